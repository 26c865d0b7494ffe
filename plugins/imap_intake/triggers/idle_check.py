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
import contextvars
import datetime as dt
import functools
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TaskSkippedEvent, TriggerEvent


class IdleCheckTrigger(BaseTrigger):
    """The run's facts (type, id, conf window, data interval) come from the task instance's context,
    which the triggerer builds for a task that starts here."""

    def __init__(self, *, workspace: str, workspaces_file: str | None = None) -> None:
        super().__init__()
        self.workspace = workspace
        self.workspaces_file = workspaces_file

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{__name__}.IdleCheckTrigger", {"workspace": self.workspace, "workspaces_file": self.workspaces_file})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from imap_intake.operators.intake import is_backfill
        from imap_intake.service.check_reuse import SHARED, THREAD_POOL
        from imap_intake.service.idle import check_idle

        try:
            context = self.task_instance.get_template_context()  # type: ignore[union-attr]
        except Exception as exc:  # noqa: BLE001 - without the run's facts the poll decides on a worker
            self.log.warning("workspace '%s': the run's context is unreadable here (%s): handing the poll to a worker", self.workspace, exc)
            yield TriggerEvent({"reason": f"run context unreadable in the triggerer: {exc}"})
            return
        dag_run = context.get("dag_run")
        conf = getattr(dag_run, "conf", None) or {}
        check = functools.partial(
            check_idle, self.workspace, now=dt.datetime.now(dt.UTC), backfill=is_backfill(dag_run),
            since=conf.get("since") or None, until=conf.get("until") or None,
            interval=(context.get("data_interval_start"), context.get("data_interval_end")),
            run_id=context.get("run_id") or None, workspaces_file=self.workspaces_file, reuse=SHARED,
        )
        # The checks' own threads (as asyncio.to_thread, with the context copied): connection lookups
        # and ledger connections are kept between checks (imap_intake.service.check_reuse).
        verdict = await asyncio.get_running_loop().run_in_executor(THREAD_POOL, contextvars.copy_context().run, check)
        if verdict.idle:
            self.log.info("workspace '%s': %s: the run ends here, without a worker", self.workspace, verdict.reason)
            yield TaskSkippedEvent()
            return
        self.log.info("workspace '%s': %s: handing the poll to a worker", self.workspace, verdict.reason)
        yield TriggerEvent({"reason": verdict.reason})
