"""Shared helpers for the service tests (real Dovecot, real Postgres)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import psycopg

from imap_intake.config import Workspace
from imap_intake.imap.settings import ConnectionSettings
from imap_intake.service.poll import PollResult, Window, poll
from imap_intake.store.storage import AttachmentStore

NOW = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC)


def run(workspace: Workspace, settings: ConnectionSettings, connection: psycopg.Connection, *, window: Window | None = None) -> PollResult:
    store = AttachmentStore(workspace.storage_base)
    return poll(workspace, settings, connection=connection, now=NOW, window=window,
                store=store)


def attachment_rows(connection: psycopg.Connection, workspace: str) -> list[tuple[str, str, int]]:
    return connection.execute(
        "SELECT fingerprint, sha256, part_index FROM imap_intake.attachment WHERE workspace=%s ORDER BY id", (workspace,)
    ).fetchall()


def outcomes(connection: psycopg.Connection, workspace: str) -> dict[str, int]:
    return dict(connection.execute(
        "SELECT outcome, count(*) FROM imap_intake.message WHERE workspace=%s GROUP BY 1", (workspace,)
    ).fetchall())


def stored_files(base: str) -> list[Path]:
    root = Path(base.removeprefix("file://"))
    return sorted(p for p in root.rglob("*") if p.is_file())
