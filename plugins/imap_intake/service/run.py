"""The entry points operators and the CLI share: one call each, same code path."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from imap_intake.config import Workspace
from imap_intake.exceptions import ConfigError
from imap_intake.hooks.imap import ImapIntakeHook
from imap_intake.imap.settings import ConnectionSettings
from imap_intake.service.imports import ImportResult, count_importable, import_pending
from imap_intake.service.poll import PollResult, Window, poll
from imap_intake.service.reread import DEFAULT_OUTCOMES, RereadResult, reread
from imap_intake.store import db
from imap_intake.store.storage import AttachmentStore
from imap_intake.workspaces import get_workspace


@contextmanager
def _ledger(conn_id: str) -> Iterator[psycopg.Connection]:
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
    with _ledger(workspace.postgres_conn_id) as connection:
        yield workspace, settings, AttachmentStore(workspace.storage_base), connection


def run_poll(slug: str, *, now: dt.datetime, window: Window | None = None, sweep_until: dt.datetime | None = None,
             workspaces_file: str | Path | None = None) -> PollResult:
    with _mailbox_job(slug, workspaces_file) as (workspace, settings, store, connection):
        result = poll(workspace, settings, connection=connection, now=now, window=window, sweep_until=sweep_until,
                      store=store, probe_store=store.probe)
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
    store = AttachmentStore(workspace.storage_base)
    with _ledger(workspace.postgres_conn_id) as connection:
        return import_pending(workspace, connection=connection, read=store.get, now=now, limit=limit)


def parse_window(since: Any, until: Any, *, now: dt.datetime | None = None) -> Window | None:
    """A window from two ISO dates or datetimes (UTC when naive). Neither: no window. ``since`` alone
    reaches up to ``now`` when it is given (the trigger form's "until" left empty)."""
    if not since and not until:
        return None
    if not until and now is not None:
        until = now
    if not since or not until:
        raise ConfigError("a backfill needs 'since' (and 'until', or up to now): ISO dates, e.g. 2026-01-01 (not retried)")

    def moment(name: str, value: Any) -> dt.datetime:
        if isinstance(value, dt.datetime):
            parsed = value
        elif isinstance(value, dt.date):
            parsed = dt.datetime.combine(value, dt.time())
        else:
            try:
                parsed = dt.datetime.fromisoformat(str(value).strip())
            except ValueError as exc:
                raise ConfigError(
                    f"backfill '{name}' {str(value)!r} is not a date: use an ISO date or date-time, e.g. 2026-03-01 "
                    "or 2026-03-01T08:00:00+00:00 (not retried)"
                ) from exc
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)

    start, end = moment("since", since), moment("until", until)
    if end <= start:
        raise ConfigError(f"backfill window is empty: until ({end.isoformat()}) must be after since ({start.isoformat()})")
    return Window(start, end)
