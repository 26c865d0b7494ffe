"""Thin operators: store the arguments, make one service call, translate errors for Airflow.

Authentication, TLS and configuration errors fail the task at once (``AirflowFailException``):
retrying a bad password locks accounts. Transient faults are retried with backoff.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from airflow.sdk import BaseOperator
from airflow.sdk.bases.skipmixin import XCOM_SKIPMIXIN_KEY, XCOM_SKIPMIXIN_SKIPPED, SkipMixin
from airflow.sdk.definitions.mappedoperator import MappedOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException, DownstreamTasksSkipped

from imap_intake.exceptions import ImapIntakeError
from imap_intake.operators.links import IntakeStatusLink

T = TypeVar("T")


def _no_retry_for_permanent(call: Callable[[], T]) -> T:
    try:
        return call()
    except ImapIntakeError as exc:
        if exc.retryable:
            raise
        raise AirflowFailException(f"{exc} (not retried)") from exc


def is_backfill(dag_run: Any) -> bool:
    """Whether a run was created by Airflow's backfill (UI, REST or ``airflow backfill create``).

    Inside a task ``run_type`` is a ``DagRunType`` whose ``str()`` is ``"DagRunType.BACKFILL"``;
    its value is ``"backfill"``. Compare the value, whatever form arrives.
    """
    run_type = getattr(dag_run, "run_type", None)
    value = str(getattr(run_type, "value", run_type) or "")
    return value.rsplit(".", 1)[-1].lower() in {"backfill", "backfill_job"}


def backfill_window(context: Any, since: str | None, until: str | None) -> tuple[Any, Any]:
    """conf {"since", "until"} wins; a backfill run uses its data interval; a scheduled run has none."""
    if since or until:
        return since, until
    if is_backfill(context.get("dag_run")):
        return context.get("data_interval_start"), context.get("data_interval_end")
    return None, None


class PollMailboxOperator(BaseOperator, SkipMixin):
    """Poll one workspace's mailbox folder and record every new message exactly once.

    In an Airflow backfill run the poll rescans its data interval; the backfill's first run sweeps
    from its interval to now, and later runs inside that sweep finish without an IMAP session and
    skip the import tasks (nothing new can have been stored). Any run after which no attachment
    awaits import skips them too.
    """

    template_fields: Sequence[str] = ("workspace", "since", "until")
    ui_color = "#e8f1fb"
    operator_extra_links = (IntakeStatusLink(),)

    def __init__(self, *, workspace: str, workspaces_file: str | None = None, since: str | None = None,
                 until: str | None = None, start_in_triggerer: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.workspace = workspace
        self.workspaces_file = workspaces_file
        self.since = since
        self.until = until
        self.poll_id: int | None = None  # set by execute: the extra link opens this poll's page
        if start_in_triggerer:
            # The idle check first, in the triggerer: a run with nothing to do never reaches a worker
            # (imap_intake.triggers.idle_check). Under dag.test() or a worker started directly, execute() runs.
            from airflow.triggers.base import StartTriggerArgs

            self.start_from_trigger = True
            self.start_trigger_args = StartTriggerArgs(
                trigger_cls="imap_intake.triggers.idle_check.IdleCheckTrigger", next_method="execute_after_check",
                trigger_kwargs={"workspace": workspace, "workspaces_file": workspaces_file},
                next_kwargs=None, timeout=None,
            )

    def execute_after_check(self, context: Any, event: Any = None) -> dict[str, object]:
        """The idle check found something to do (or could not tell): poll as ever."""
        self.log.info("idle check: %s", (event or {}).get("reason", "work to do") if isinstance(event, dict) else event)
        return self.execute(context)

    def execute(self, context: Any) -> dict[str, object]:
        from imap_intake.service.run import run_poll

        since, until = backfill_window(context, self.since, self.until)
        sweep = not (self.since or self.until) and is_backfill(context.get("dag_run"))
        result = _no_retry_for_permanent(
            lambda: run_poll(
                self.workspace, now=dt.datetime.now(dt.UTC), since=since, until=until, sweep=sweep,
                run_id=context.get("run_id"), workspaces_file=self.workspaces_file,
            ).as_dict()
        )
        self.poll_id = result.get("poll_id")  # type: ignore[assignment]
        if result.get("covered_by_scan") is not None:
            self.log.info("window covered by backfill scan %s: skipping the import tasks", result["covered_by_scan"])
            self._skip_downstream(context)
        elif result.get("importable") == 0:
            # An idle run: each import task would start a process to find nothing (make scale measured
            # most of an idle run's cost there). Pending work left by a failed import is counted too.
            self.log.info("nothing to import for workspace '%s': skipping the import tasks", self.workspace)
            self._skip_downstream(context)
        return result

    def _skip_downstream(self, context: Any) -> None:
        """``SkipMixin.skip`` names each task by id, which reaches an unmapped task instance (map index
        -1) but not the import slots: a task mapped over a literal list has its instances 0..N-1
        created with the run. Name every instance; the XCom lets Airflow skip them again on a clear."""
        tasks = self.get_flat_relatives(upstream=False)
        context["ti"].xcom_push(key=XCOM_SKIPMIXIN_KEY, value={XCOM_SKIPMIXIN_SKIPPED: [t.task_id for t in tasks]})
        instances: list[str | tuple[str, int]] = []
        for task in tasks:
            instances.append(task.task_id)
            if isinstance(task, MappedOperator):
                instances += [(task.task_id, index) for index in range(_literal_map_length(task))]
        raise DownstreamTasksSkipped(tasks=instances)


def _literal_map_length(task: MappedOperator) -> int:
    """How many instances a task mapped over literal lists has (0 when a length is known only at run time)."""
    kwargs = task.expand_input.value
    if not isinstance(kwargs, dict):
        return 0
    lengths = [len(v) for v in kwargs.values() if isinstance(v, list | tuple)]
    return math.prod(lengths) if lengths and len(lengths) == len(kwargs) else 0


class ImportOrdersOperator(BaseOperator):
    """Claim pending attachments (SKIP LOCKED) and import them as purchase orders.

    A workspace DAG maps it over ``slot=[1..import_tasks]``: the slots run in parallel and share the
    pending work through the claims, so the slot number only names the instance in the logs. A slot
    that imported orders updates the workspace's orders asset (its outlet) with its counts; a slot
    that imported none is skipped, so no empty asset event is sent.
    """

    template_fields: Sequence[str] = ("workspace",)
    ui_color = "#eef7ea"
    operator_extra_links = (IntakeStatusLink(),)

    def __init__(self, *, workspace: str, workspaces_file: str | None = None, slot: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.workspace = workspace
        self.workspaces_file = workspaces_file
        self.slot = slot

    def execute(self, context: Any) -> dict[str, object]:
        from imap_intake.service.run import run_import

        self.log.info("import slot %s of workspace '%s': claiming pending attachments", self.slot, self.workspace)
        result = _no_retry_for_permanent(
            lambda: run_import(self.workspace, now=dt.datetime.now(dt.UTC), workspaces_file=self.workspaces_file).as_dict()
        )
        counts = {key: int(result.get(key, 0) or 0)  # type: ignore[call-overload]
                  for key in ("imported", "failed", "quarantined", "possible_duplicates", "revisions")}
        if counts["imported"] == 0:
            raise AirflowSkipException(f"slot {self.slot}: no new purchase orders ({counts}); no asset event")
        for asset in self.outlets:
            context["outlet_events"][asset].extra = {**counts, "slot": self.slot}
        return result


class RunVerdictOperator(BaseOperator):
    """The run's verdict. Airflow starts it only when a task of the run failed (``one_failed``; a
    healthy run skips it without a task process), and it fails the run with what failed and why:
    the import tasks run after a poll that failed too (``one_done``), so without a failing last task
    a failed poll would end in a green run. It also tells the workspace's ``on_stale`` notifiers,
    once per episode, when the last successful poll is older than ``alerts.stale_after``."""

    template_fields: Sequence[str] = ("workspace",)
    ui_color = "#fbe9e7"

    def __init__(self, *, workspace: str, workspaces_file: str | None = None, **kwargs: Any) -> None:
        super().__init__(**{"trigger_rule": "one_failed", "retries": 0, **kwargs})
        self.workspace = workspace
        self.workspaces_file = workspaces_file

    def execute(self, context: Any) -> None:
        from imap_intake.service.verdict import run_verdict

        ti = context["ti"]
        states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
        failed = sorted(task for task, state in states.items() if state in {"failed", "upstream_failed"} and task != self.task_id)
        verdict = run_verdict(self.workspace, run_id=ti.run_id, failed_tasks=failed, now=dt.datetime.now(dt.UTC),
                              workspaces_file=self.workspaces_file)
        if verdict.stale is not None:
            self._tell_stale(context, verdict.stale.message)
        raise AirflowFailException(verdict.message)

    def _tell_stale(self, context: Any, message: str) -> None:
        from imap_intake.notifiers import build_notifiers, notify_all
        from imap_intake.workspaces import get_workspace

        workspace = get_workspace(self.workspace, self.workspaces_file)
        notifiers = build_notifiers(workspace.alerts.on_stale, where=f"workspace '{self.workspace}': alerts.on_stale")
        self.log.warning("%s: telling %d notifier(s)", message, len(notifiers))
        notify_all(notifiers, {**context, "imap_intake": {"event": "stale", "workspace": self.workspace, "message": message}})
