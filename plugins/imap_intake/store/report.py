"""Read-only views of the ledger for ``imap-intake status`` and ``attachments``."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

ATTACHMENT_FIELDS = (
    "workspace", "folder", "uidvalidity", "uid", "message_id", "internal_date", "sender", "original_filename",
    "filename", "sha256", "size", "content_type", "supplier", "storage_uri", "import_status",
)


def status(connection: psycopg.Connection, workspace: str | None = None) -> list[dict[str, Any]]:
    with connection.cursor(row_factory=dict_row) as cur:
        names = [r["workspace"] for r in cur.execute(
            "SELECT DISTINCT workspace FROM (SELECT workspace FROM imap_intake.cursor UNION SELECT workspace FROM imap_intake.poll) w "
            "WHERE %s::text IS NULL OR workspace = %s ORDER BY 1",
            (workspace, workspace),
        )]
        report = []
        for name in names:
            cursors = cur.execute(
                "SELECT account, folder, uidvalidity, last_uid, updated_at FROM imap_intake.cursor WHERE workspace=%s ORDER BY folder", (name,)
            ).fetchall()
            last = cur.execute(
                "SELECT mode, status, started_at, finished_at, fetched, imported, error FROM imap_intake.poll "
                "WHERE workspace=%s ORDER BY id DESC LIMIT 1", (name,)
            ).fetchone()
            outcomes = {r["outcome"]: r["n"] for r in cur.execute(
                "SELECT outcome, count(*) AS n FROM imap_intake.message WHERE workspace=%s GROUP BY outcome ORDER BY 1", (name,)
            )}
            imports = {r["import_status"]: r["n"] for r in cur.execute(
                "SELECT import_status, count(*) AS n FROM imap_intake.attachment WHERE workspace=%s GROUP BY 1 ORDER BY 1", (name,)
            )}
            quarantined = cur.execute(
                "SELECT id, original_filename, attempts, last_error FROM imap_intake.attachment "
                "WHERE workspace=%s AND import_status='quarantined' ORDER BY id LIMIT 50", (name,)
            ).fetchall()
            failed = cur.execute(
                "SELECT uid, uidvalidity, sender, subject, reason, seen_at FROM imap_intake.message "
                "WHERE workspace=%s AND outcome='failed' ORDER BY id LIMIT 50", (name,)
            ).fetchall()
            report.append({
                "workspace": name, "cursors": cursors, "last_poll": last, "outcomes": outcomes,
                "imports": imports, "quarantined": quarantined, "failed": failed,
            })
    return report


def attachments(connection: psycopg.Connection, workspace: str) -> list[dict[str, Any]]:
    with connection.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """
            SELECT a.workspace, m.folder, m.uidvalidity, m.uid, m.message_id, m.internal_date, m.sender,
                   a.original_filename, a.filename, a.sha256, a.size, a.content_type, a.supplier,
                   a.storage_uri, a.import_status, a.kind, a.last_error
            FROM imap_intake.attachment a JOIN imap_intake.message m ON m.id = a.message
            WHERE a.workspace = %s ORDER BY a.id
            """,
            (workspace,),
        ).fetchall()


def skipped(connection: psycopg.Connection, workspace: str, limit: int = 20) -> list[dict[str, Any]]:
    with connection.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT uid, sender, subject, outcome, reason FROM imap_intake.message "
            "WHERE workspace=%s AND outcome <> 'imported' ORDER BY id DESC LIMIT %s",
            (workspace, limit),
        ).fetchall()
