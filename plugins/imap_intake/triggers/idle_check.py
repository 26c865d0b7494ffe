"""Where a poll task starts: in the triggerer, with the idle check (``service/idle.py``).

The poll operator starts from this trigger (``start_from_trigger``): the scheduler hands the task
straight to the triggerer, which renders these fields from the run and asks the idle check. Nothing
to do: the task ends *skipped* from here (``TaskSkippedEvent``), its import slots and verdict are
skipped by the scheduler, and the run succeeds without a worker ever starting a task process.
Anything to do, or any doubt: an ordinary event resumes the task on a worker, where the poll runs as
it always did.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TaskSkippedEvent, TriggerEvent


class IdleCheckTrigger(BaseTrigger):
    """The run's facts (type, id, conf window, data interval) come from the task instance's context,
    which the triggerer builds for a task that starts here; the keyword arguments are the fallback."""

    def __init__(self, *, workspace: str, workspaces_file: str | None = None, run_type: str = "", run_id: str = "",
                 since: str = "", until: str = "", interval_start: str = "", interval_end: str = "") -> None:
        super().__init__()
        self.workspace = workspace
        self.workspaces_file = workspaces_file
        self.run_type = run_type
        self.run_id = run_id
        self.since = since
        self.until = until
        self.interval_start = interval_start
        self.interval_end = interval_end

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{__name__}.IdleCheckTrigger", {
            "workspace": self.workspace, "workspaces_file": self.workspaces_file, "run_type": self.run_type,
            "run_id": self.run_id, "since": self.since, "until": self.until,
            "interval_start": self.interval_start, "interval_end": self.interval_end,
        })

    def _from_context(self) -> None:
        context_of = getattr(self.task_instance, "get_template_context", None)
        if context_of is None:
            return
        context = context_of()
        dag_run = context.get("dag_run")
        conf = getattr(dag_run, "conf", None) or {}
        run_type = getattr(dag_run, "run_type", "")
        self.run_type = str(getattr(run_type, "value", run_type) or "")
        self.run_id = str(context.get("run_id") or "")
        self.since, self.until = str(conf.get("since") or ""), str(conf.get("until") or "")
        start, end = context.get("data_interval_start"), context.get("data_interval_end")
        self.interval_start = start.isoformat() if start else ""
        self.interval_end = end.isoformat() if end else ""

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from imap_intake.service.idle import check_idle

        try:
            self._from_context()
        except Exception as exc:  # noqa: BLE001 - without the run's facts the poll decides on a worker
            self.log.warning("workspace '%s': the run's context is unreadable here (%s): handing the poll to a worker", self.workspace, exc)
            yield TriggerEvent({"reason": f"run context unreadable in the triggerer: {exc}"})
            return
        backfill = self.run_type.rsplit(".", 1)[-1].lower() in {"backfill", "backfill_job"}
        verdict = await asyncio.to_thread(
            check_idle, self.workspace, now=dt.datetime.now(dt.UTC), backfill=backfill, since=self.since, until=self.until,
            interval=(self.interval_start or None, self.interval_end or None), run_id=self.run_id or None,
            workspaces_file=self.workspaces_file,
        )
        if verdict.idle:
            self.log.info("workspace '%s': %s: the run ends here, without a worker", self.workspace, verdict.reason)
            yield TaskSkippedEvent()
            return
        self.log.info("workspace '%s': %s: handing the poll to a worker", self.workspace, verdict.reason)
        yield TriggerEvent({"reason": verdict.reason})
