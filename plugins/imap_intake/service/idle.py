"""The idle check: may a run end without a worker? Read in the triggerer before the poll task starts.

A scheduled (or manual, or asset-triggered) run without a window has nothing to do when the folder's
UIDVALIDITY is the cursor's and its UIDNEXT says no message arrived after the cursor (IMAP STATUS,
one short session), and no attachment awaits import. An Airflow backfill run has nothing to do when
a fresh scan under the same rules already holds its window (what the poll itself decides, read the
same way). Anything else - a first poll, a window from the trigger form, new mail, pending imports,
and any error at all - sends the task to a worker as before, where the poll does its work and its
failures are diagnosed, recorded and fail the run. Exactly-once stays with the poll: this reads the
ledger and writes only one row, ``imap_intake.idle_check`` (when the workspace was last found quiet).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from imap_intake.hooks.imap import ImapIntakeHook
from imap_intake.imap.mailbox import Mailbox
from imap_intake.service.check_reuse import CheckReuse
from imap_intake.service.imports import count_importable
from imap_intake.service.poll import plan_sweep, rules_fingerprint
from imap_intake.service.run import ledger_connection, parse_window
from imap_intake.store import db
from imap_intake.store.ledger import Ledger
from imap_intake.workspaces import get_workspace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IdleCheck:
    idle: bool
    reason: str


def check_idle(slug: str, *, now: dt.datetime, backfill: bool, since: Any = None, until: Any = None,
               interval: tuple[Any, Any] = (None, None), run_id: str | None = None,
               workspaces_file: str | Path | None = None, reuse: CheckReuse | None = None) -> IdleCheck:
    """Whether this run has nothing to do (see the module docstring). Never raises: an error is a
    reason to let the poll run, not a verdict. ``reuse`` (the triggerer's) keeps connection lookups
    and ledger connections between checks; after an error with a kept connection the check is made
    once more afresh (a restarted Postgres breaks every kept connection)."""
    if since or until:
        return IdleCheck(False, "a backfill window was given: the poll reads it")
    check = functools.partial(_check, slug, now=now, backfill=backfill, interval=interval, run_id=run_id,
                              workspaces_file=workspaces_file, reuse=reuse)
    try:
        return check()
    except psycopg.OperationalError as exc:
        if reuse is None:
            return _undecided(exc)
        log.info("workspace '%s': a kept ledger connection failed (%s): checking again afresh", slug, exc)
    except Exception as exc:  # noqa: BLE001 - the worker's poll reports it properly
        return _undecided(exc)
    try:
        return check()  # the kept connections were dropped with the error: this one connects afresh
    except Exception as exc:  # noqa: BLE001 - as above
        return _undecided(exc)


def _undecided(exc: Exception) -> IdleCheck:
    return IdleCheck(False, f"the idle check could not decide ({type(exc).__name__}: {exc}); the poll runs")


@contextmanager
def _ledger(conn_id: str, reuse: CheckReuse | None) -> Iterator[psycopg.Connection]:
    if reuse is None:
        with ledger_connection(conn_id) as connection:
            yield connection
        return
    dsn = reuse.lookup("dsn", conn_id, lambda: db.dsn_for_connection(conn_id))
    with reuse.connection(dsn, db.connect_and_migrate) as connection:
        yield connection


def _check(slug: str, *, now: dt.datetime, backfill: bool, interval: tuple[Any, Any], run_id: str | None,
           workspaces_file: str | Path | None, reuse: CheckReuse | None) -> IdleCheck:
    workspace = get_workspace(slug, workspaces_file)
    hook = ImapIntakeHook(workspace.imap_conn_id)
    settings = reuse.lookup("imap", workspace.imap_conn_id, hook.get_settings) if reuse is not None else hook.get_settings()
    folder = workspace.folder or settings.folder
    with _ledger(workspace.postgres_conn_id, reuse) as connection:
        ledger = Ledger(connection, workspace=slug, account=settings.account, folder=folder)
        if backfill:
            window = parse_window(*interval, now=now)
            if window is None:
                return IdleCheck(False, "a backfill run without a data interval: the poll decides")
            scan, covered_by = plan_sweep(ledger, window, now, rules=rules_fingerprint(workspace, settings), now=now)
            if scan is not None:
                return IdleCheck(False, f"backfill window {window.since:%Y-%m-%d %H:%M} - {window.until:%H:%M} not scanned yet")
            return _quiet(connection, slug, settings.account, folder, run_id, now, None, None,
                          f"backfill window {window.since:%Y-%m-%d %H:%M} - {window.until:%Y-%m-%d %H:%M} UTC lies inside "
                          f"backfill scan {covered_by}, made under the same rules: nothing to read")
        pending = count_importable(workspace, connection=connection, now=now)
        if pending:
            return IdleCheck(False, f"{pending} attachment(s) await import")
        cursor = ledger.cursor()
        if cursor is None:
            return IdleCheck(False, "no cursor yet: the first poll sets it")
        with Mailbox.open(settings) as mailbox:
            uidvalidity, uidnext = mailbox.status(folder)
        if uidvalidity != cursor.uidvalidity:
            return IdleCheck(False, f"UIDVALIDITY changed from {cursor.uidvalidity} to {uidvalidity}")
        if uidnext - 1 > cursor.last_uid:
            return IdleCheck(False, f"new mail: UIDNEXT {uidnext}, cursor at UID {cursor.last_uid}")
        return _quiet(connection, slug, settings.account, folder, run_id, now, uidvalidity, uidnext,
                      f"no new mail in '{folder}' (UIDNEXT {uidnext}, cursor at UID {cursor.last_uid}) and nothing to import")


def _quiet(connection: Any, slug: str, account: str, folder: str, run_id: str | None, now: dt.datetime,
           uidvalidity: int | None, uidnext: int | None, reason: str) -> IdleCheck:
    connection.execute(
        "INSERT INTO imap_intake.idle_check (workspace, account, folder, checked_at, uidvalidity, uidnext, run_id, reason) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (workspace) DO UPDATE SET account=EXCLUDED.account, "
        "folder=EXCLUDED.folder, checked_at=EXCLUDED.checked_at, uidvalidity=EXCLUDED.uidvalidity, uidnext=EXCLUDED.uidnext, "
        "run_id=EXCLUDED.run_id, reason=EXCLUDED.reason",
        (slug, account, folder, now, uidvalidity, uidnext, run_id, reason[:2000]),
    )
    connection.commit()
    return IdleCheck(True, reason)
