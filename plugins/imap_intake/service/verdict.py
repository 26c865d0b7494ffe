"""A failed run's verdict: what failed and why, in one message, and whether the workspace is stale.

Called by the run's verdict task, which Airflow starts only when a task of the run failed (trigger
rule ``one_failed``): a healthy run pays nothing for it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from imap_intake.exceptions import ImapIntakeError
from imap_intake.service.run import ledger_connection
from imap_intake.store import alerts
from imap_intake.store.alerts import StaleAlert
from imap_intake.workspaces import get_workspace


@dataclass(frozen=True)
class Verdict:
    message: str
    stale: StaleAlert | None = None


def run_verdict(slug: str, *, run_id: str, failed_tasks: list[str], now: dt.datetime,
                workspaces_file: str | Path | None = None) -> Verdict:
    """Why the run failed (the failed tasks, and the poll's own error from the ledger), and the stale
    alert this call claimed, if any (claimed once per episode across all runs)."""
    workspace = get_workspace(slug, workspaces_file)
    failed = ", ".join(failed_tasks) or "a task"
    why = ""
    stale = None
    try:
        with ledger_connection(workspace.postgres_conn_id) as connection:
            polls = alerts.run_polls(connection, slug, run_id)
            if workspace.alerts.stale_after is not None:
                stale = alerts.claim_stale_alert(connection, slug, stale_after=workspace.alerts.stale_after, now=now)
    except ImapIntakeError as exc:
        why = f"; the ledger could not be read for details ({exc})"
        polls = []
    failed_polls = [p for p in polls if p["status"] == "failed"]
    if failed_polls and "poll_mailbox" in failed:
        last = failed_polls[0]
        tries = f" after {len(failed_polls)} tries" if len(failed_polls) > 1 else ""
        why = f": poll {last['id']} failed{tries}: {last['error'] or 'no reason recorded'}"
    message = f"workspace '{slug}': {failed} failed in this run{why}"
    if stale is not None:
        message += f". {stale.message}"
    return Verdict(message=message, stale=stale)
