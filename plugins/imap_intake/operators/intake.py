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
                 until: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.workspace = workspace
        self.workspaces_file = workspaces_file
        self.since = since
        self.until = until
        self.poll_id: int | None = None  # set by execute: the extra link opens this poll's page

    def execute(self, context: Any) -> dict[str, object]:
        from imap_intake.service.run import parse_window, run_poll

        since, until = backfill_window(context, self.since, self.until)
        now = dt.datetime.now(dt.UTC)
        sweep = not (self.since or self.until) and is_backfill(context.get("dag_run"))
        result = _no_retry_for_permanent(
            lambda: run_poll(
                self.workspace, now=now, window=parse_window(since, until, now=now), sweep_until=now if sweep else None,
                workspaces_file=self.workspaces_file,
            ).as_dict()
        )
        self.poll_id = result.get("poll_id")  # type: ignore[assignment]
        if result.get("covered_by_scan") is not None:
            self.log.info("window covered by backfill scan %s: skipping the import tasks", result["covered_by_scan"])
            self._skip_downstream(context)
        elif result.get("importable") == 0:
            # An idle run: each import task would start a process to find nothing (make scale measured
            # most of an idle run's cost there). Pending work left by a failed import is counted too.
            self.log.info("nothing to import for workspace '%s': skipping the import and publish tasks", self.workspace)
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
    pending work through the claims, so the slot number only names the instance in the logs.
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
        return _no_retry_for_permanent(
            lambda: run_import(self.workspace, now=dt.datetime.now(dt.UTC), workspaces_file=self.workspaces_file).as_dict()
        )


class PublishOrdersOperator(BaseOperator):
    """Emit the workspace's Asset event with counts, or skip (no event) when no order arrived."""

    ui_color = "#fdf5e6"

    def __init__(self, *, import_task_ids: Sequence[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.import_task_ids = list(import_task_ids)

    def execute(self, context: Any) -> dict[str, int]:
        results = context["ti"].xcom_pull(task_ids=self.import_task_ids) or []
        counts = {"imported": 0, "failed": 0, "quarantined": 0}
        for result in results:
            for key in counts:
                counts[key] += int((result or {}).get(key, 0))
        if counts["imported"] == 0:
            raise AirflowSkipException(f"no new purchase orders ({counts}); no asset event")
        for asset in self.outlets:
            context["outlet_events"][asset].extra = counts
        return counts
