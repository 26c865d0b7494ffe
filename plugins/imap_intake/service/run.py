"""The entry points operators and the CLI share: one call each, same code path."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from imap_intake.config import Workspace
from imap_intake.exceptions import ConfigError, ImapIntakeError
from imap_intake.hooks.imap import ImapIntakeHook
from imap_intake.imap.settings import ConnectionSettings
from imap_intake.service.imports import ImportResult, count_importable, import_pending
from imap_intake.service.poll import PollResult, Window, poll
from imap_intake.service.reread import DEFAULT_OUTCOMES, RereadResult, reread
from imap_intake.store import db
from imap_intake.store.ledger import Ledger
from imap_intake.store.storage import AttachmentStore
from imap_intake.workspaces import get_workspace


def _store(workspace: Workspace) -> AttachmentStore:
    """The workspace's attachment store: its storage base, through its storage connection when it names one."""
    return AttachmentStore(workspace.storage_base, conn_id=workspace.storage_conn_id)


@contextmanager
def ledger_connection(conn_id: str) -> Iterator[psycopg.Connection]:
    """Our database connection; a database that goes away mid-run is a transient, retried fault."""
    try:
        with db.connect(conn_id) as connection:
            yield connection
    except psycopg.OperationalError as exc:
        raise db.LedgerUnavailable(f"ledger database '{conn_id}' went away: {exc}; will retry") from exc


@contextmanager
def _mailbox_job(slug: str, workspaces_file: str | Path | None) -> Iterator[tuple[Workspace, ConnectionSettings, AttachmentStore, psycopg.Connection]]:
    """What a poll or a re-read needs: the workspace, its connection's settings, the attachment
    store (the ledger stages into it per batch and settles it before each COMMIT) and the ledger."""
    workspace = get_workspace(slug, workspaces_file)
    settings = ImapIntakeHook(workspace.imap_conn_id).get_settings()
    with ledger_connection(workspace.postgres_conn_id) as connection:
        yield workspace, settings, _store(workspace), connection


def run_poll(slug: str, *, now: dt.datetime, since: Any = None, until: Any = None, sweep: bool = False,
             run_id: str | None = None, workspaces_file: str | Path | None = None) -> PollResult:
    """One poll of a workspace: with ``since``/``until`` a backfill of that window (``sweep``: an
    Airflow backfill run, which scans from its window up to now at once). A poll that cannot start
    (a refused window, a connection that cannot be read) is recorded as failed with its reason
    before the error is raised, so the status page shows it."""
    workspace = get_workspace(slug, workspaces_file)
    with ledger_connection(workspace.postgres_conn_id) as connection:
        settings: ConnectionSettings | None = None
        try:
            window = parse_window(since, until, now=now)
            settings = ImapIntakeHook(workspace.imap_conn_id).get_settings()
            store = _store(workspace)
        except ImapIntakeError as exc:
            folder = workspace.folder or (settings.folder if settings else "")
            ledger = Ledger(connection, workspace=slug, account=settings.account if settings else "", folder=folder)
            ledger.refused_poll("backfill" if since or until or sweep else "poll", error=str(exc), run_id=run_id)
            raise
        result = poll(workspace, settings, connection=connection, now=now, window=window, sweep_until=now if sweep and window else None,
                      store=store, probe_store=store.probe, run_id=run_id)
        result.importable = count_importable(workspace, connection=connection, now=now)
        return result


def run_reread(
    slug: str, *, now: dt.datetime, uids: list[int] | None = None, outcomes: tuple[str, ...] = DEFAULT_OUTCOMES,
    workspaces_file: str | Path | None = None,
) -> RereadResult:
    with _mailbox_job(slug, workspaces_file) as (workspace, settings, store, connection):
        return reread(workspace, settings, connection=connection, now=now, uids=uids, outcomes=outcomes, store=store)


def run_import(slug: str, *, now: dt.datetime, limit: int | None = None, workspaces_file: str | Path | None = None) -> ImportResult:
    workspace = get_workspace(slug, workspaces_file)
    store = _store(workspace)
    with ledger_connection(workspace.postgres_conn_id) as connection:
        return import_pending(workspace, connection=connection, read=store.get, now=now, limit=limit)


def parse_window(since: Any, until: Any, *, now: dt.datetime | None = None) -> Window | None:
    """A window from two ISO dates or date-times (UTC when naive). Neither: no window. ``until`` as a
    date is the last day re-checked (inclusive: the window ends at the next midnight); as a date-time
    it is exclusive. ``since`` alone reaches up to ``now`` when it is given (the form's "until" left empty)."""
    if not since and not until:
        return None
    if not until and now is not None:
        until = now
    if not since or not until:
        raise ConfigError("a backfill needs 'since' (and 'until', or up to now): ISO dates, e.g. 2026-01-01 (not retried)")
    start, _ = _moment("since", since)
    end, whole_day = _moment("until", until)
    if whole_day:
        end += dt.timedelta(days=1)
    if end <= start:
        shown = f"{str(until).strip()} (the last day re-checked)" if whole_day else end.isoformat()
        raise ConfigError(
            f"backfill window is empty: since ({start.isoformat()}) is not before until ({shown}); "
            "swap the two dates, or leave until empty to re-check up to now (not retried)"
        )
    return Window(start, end)


def _moment(name: str, value: Any) -> tuple[dt.datetime, bool]:
    """The instant, and whether it was given as a whole day (a date without a time)."""
    if isinstance(value, dt.datetime):
        parsed, whole_day = value, False
    elif isinstance(value, dt.date):
        parsed, whole_day = dt.datetime.combine(value, dt.time()), True
    else:
        text = str(value).strip()
        try:
            if len(text) == 10:
                parsed, whole_day = dt.datetime.combine(dt.date.fromisoformat(text), dt.time()), True
            else:
                parsed, whole_day = dt.datetime.fromisoformat(text), False
        except ValueError as exc:
            raise ConfigError(
                f"backfill '{name}' {text!r} is not a date: use an ISO date or date-time, e.g. 2026-03-01 "
                "or 2026-03-01T08:00:00+00:00 (not retried)"
            ) from exc
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)), whole_day
