"""Read-only views of the ledger: ``imap-intake status`` and ``attachments``, and the status page in the Airflow UI."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

ATTACHMENT_FIELDS = (
    "workspace", "folder", "uidvalidity", "uid", "message_id", "internal_date", "sender", "original_filename",
    "filename", "sha256", "size", "content_type", "supplier", "storage_uri", "import_status",
)


def _cursors(cur: psycopg.Cursor[Any], workspace: str) -> list[Any]:
    return cur.execute(
        "SELECT account, folder, uidvalidity, last_uid, updated_at FROM imap_intake.cursor WHERE workspace=%s ORDER BY folder",
        (workspace,)).fetchall()


def _outcome_counts(cur: psycopg.Cursor[Any], workspace: str) -> dict[str, int]:
    return {r["outcome"]: r["n"] for r in cur.execute(
        "SELECT outcome, count(*) AS n FROM imap_intake.message WHERE workspace=%s GROUP BY 1 ORDER BY 1", (workspace,))}


def _import_counts(cur: psycopg.Cursor[Any], workspace: str) -> dict[str, int]:
    return {r["import_status"]: r["n"] for r in cur.execute(
        "SELECT import_status, count(*) AS n FROM imap_intake.attachment WHERE workspace=%s GROUP BY 1 ORDER BY 1", (workspace,))}


def status(connection: psycopg.Connection, workspace: str | None = None) -> list[dict[str, Any]]:
    with connection.cursor(row_factory=dict_row) as cur:
        names = [r["workspace"] for r in cur.execute(
            "SELECT DISTINCT workspace FROM (SELECT workspace FROM imap_intake.cursor UNION SELECT workspace FROM imap_intake.poll) w "
            "WHERE %s::text IS NULL OR workspace = %s ORDER BY 1",
            (workspace, workspace),
        )]
        report = []
        for name in names:
            cursors = _cursors(cur, name)
            last = cur.execute(
                "SELECT mode, status, started_at, finished_at, fetched, imported, error FROM imap_intake.poll "
                "WHERE workspace=%s ORDER BY id DESC LIMIT 1", (name,)
            ).fetchone()
            outcomes = _outcome_counts(cur, name)
            imports = _import_counts(cur, name)
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


# --- The status page (imap_intake.ui): one query function per view, read-only. ---------------------

OUTCOMES = ("imported", "no_supported_attachment", "too_large", "unparseable", "duplicate", "not_routed", "failed")
_POLL_COLUMNS = sql.SQL("id, mode, status, started_at, finished_at, since, until, fetched, imported, error, run_id")
_MESSAGE_COLUMNS = sql.SQL("id, folder, uidvalidity, uid, message_id, internal_date, sender, subject, size, outcome, reason, "
                           "supplier, supplier_rule, duplicate_of, poll_id, seen_at, reread_at")


def workspace_summaries(connection: psycopg.Connection, workspaces: list[str]) -> dict[str, dict[str, Any]]:
    """Per workspace: message outcomes, import states and the last poll (the index page)."""
    with connection.cursor(row_factory=dict_row) as cur:
        outcomes = cur.execute(
            "SELECT workspace, outcome, count(*) AS n FROM imap_intake.message WHERE workspace = ANY(%s) GROUP BY 1, 2",
            (workspaces,)).fetchall()
        imports = cur.execute(
            "SELECT workspace, import_status, count(*) AS n FROM imap_intake.attachment WHERE workspace = ANY(%s) GROUP BY 1, 2",
            (workspaces,)).fetchall()
        # The last poll of new mail and the last backfill apart: a month of backfill runs must not hide
        # whether the regular polls still work.
        last = cur.execute(
            sql.SQL("SELECT DISTINCT ON (workspace, mode = 'backfill') workspace, mode = 'backfill' AS backfill, {} "
                    "FROM imap_intake.poll WHERE workspace = ANY(%s) ORDER BY workspace, mode = 'backfill', id DESC")
            .format(_POLL_COLUMNS), (workspaces,)).fetchall()
        checks = cur.execute("SELECT workspace, checked_at, reason, run_id FROM imap_intake.idle_check WHERE workspace = ANY(%s)",
                             (workspaces,)).fetchall()
    summary: dict[str, dict[str, Any]] = {w: {"outcomes": {}, "imports": {}, "last_poll": None, "last_backfill": None,
                                              "last_check": None} for w in workspaces}
    for row in checks:
        summary[row["workspace"]]["last_check"] = row
    for row in outcomes:
        summary[row["workspace"]]["outcomes"][row["outcome"]] = row["n"]
    for row in imports:
        summary[row["workspace"]]["imports"][row["import_status"]] = row["n"]
    for row in last:
        summary[row["workspace"]]["last_backfill" if row["backfill"] else "last_poll"] = row
    return summary


def workspace_page(connection: psycopg.Connection, workspace: str, *, outcome: str | None = None,
                   limit: int = 50) -> dict[str, Any]:
    """Everything the workspace view shows: cursor, recent polls, outcomes, messages (optionally of
    one outcome) with reasons, skipped parts, imports that failed or were quarantined, recent orders."""
    with connection.cursor(row_factory=dict_row) as cur:
        page: dict[str, Any] = {"workspace": workspace}
        page["cursors"] = _cursors(cur, workspace)
        page["last_check"] = cur.execute("SELECT checked_at, reason, run_id FROM imap_intake.idle_check WHERE workspace=%s",
                                         (workspace,)).fetchone()
        page["polls"] = cur.execute(
            sql.SQL("SELECT {} FROM imap_intake.poll WHERE workspace=%s ORDER BY id DESC LIMIT 20").format(_POLL_COLUMNS),
            (workspace,)).fetchall()
        page["outcomes"] = _outcome_counts(cur, workspace)
        page["imports"] = _import_counts(cur, workspace)
        page["messages"] = cur.execute(
            sql.SQL("SELECT {} FROM imap_intake.message WHERE workspace=%s AND (%s::text IS NULL OR outcome=%s) "
                    "ORDER BY id DESC LIMIT %s").format(_MESSAGE_COLUMNS), (workspace, outcome, outcome, limit)).fetchall()
        page["skipped_parts"] = cur.execute(
            "SELECT s.message, m.uid, s.original_filename, s.kind, s.size, s.reason FROM imap_intake.skipped_part s "
            "JOIN imap_intake.message m ON m.id = s.message WHERE m.workspace=%s ORDER BY s.id DESC LIMIT 20",
            (workspace,)).fetchall()
        page["import_problems"] = cur.execute(
            "SELECT id, message, original_filename, import_status, attempts, last_error, last_attempt_at "
            "FROM imap_intake.attachment WHERE workspace=%s AND import_status IN ('failed', 'quarantined') ORDER BY id DESC LIMIT 50",
            (workspace,)).fetchall()
        page["alerts"] = cur.execute(
            "SELECT kind, raised_at, detail FROM imap_intake.alert WHERE workspace=%s ORDER BY id DESC LIMIT 10", (workspace,)).fetchall()
        page["orders"] = cur.execute(
            "SELECT o.id, o.message, o.order_number, o.order_date, o.supplier, o.format, o.currency, o.total, o.needs_review, "
            "o.review_reason, a.original_filename, (SELECT count(*) FROM imap_intake.purchase_order_line l "
            "WHERE l.purchase_order = o.id) AS lines, o.relation, o.related_to, r.message AS related_message "
            "FROM imap_intake.purchase_order o JOIN imap_intake.attachment a ON a.id = o.attachment "
            "LEFT JOIN imap_intake.purchase_order r ON r.id = o.related_to WHERE o.workspace=%s ORDER BY o.id DESC LIMIT 20",
            (workspace,)).fetchall()
    return page


def message_page(connection: psycopg.Connection, workspace: str, message_id: int) -> dict[str, Any] | None:
    """One message with its stored attachments (and their import state), skipped parts and orders."""
    with connection.cursor(row_factory=dict_row) as cur:
        message = cur.execute(sql.SQL("SELECT {}, (SELECT run_id FROM imap_intake.poll p WHERE p.id = m.poll_id) AS run_id "
                                      "FROM imap_intake.message m WHERE workspace=%s AND id=%s").format(_MESSAGE_COLUMNS),
                              (workspace, message_id)).fetchone()
        if message is None:
            return None
        attachments_ = cur.execute(
            "SELECT id, part_index, original_filename, filename, content_type, kind, sha256, size, storage_uri, supplier, "
            "import_status, attempts, last_error, imported_at FROM imap_intake.attachment WHERE message=%s ORDER BY part_index",
            (message_id,)).fetchall()
        skipped_ = cur.execute(
            "SELECT original_filename, kind, size, reason FROM imap_intake.skipped_part WHERE message=%s ORDER BY id",
            (message_id,)).fetchall()
        orders = cur.execute(
            "SELECT id, attachment, order_number, order_date, supplier, format, currency, total, needs_review, review_reason, "
            "(SELECT count(*) FROM imap_intake.purchase_order_line l WHERE l.purchase_order = o.id) AS lines, relation, related_to, "
            "(SELECT r.message FROM imap_intake.purchase_order r WHERE r.id = o.related_to) AS related_message "
            "FROM imap_intake.purchase_order o WHERE message=%s ORDER BY id", (message_id,)).fetchall()
    return {"workspace": workspace, "message": message, "attachments": attachments_, "skipped_parts": skipped_, "orders": orders}


def poll_page(connection: psycopg.Connection, workspace: str, poll_id: int) -> dict[str, Any] | None:
    """One poll (the poll task's extra link) and the messages it recorded."""
    with connection.cursor(row_factory=dict_row) as cur:
        poll = cur.execute(sql.SQL("SELECT {}, account, folder FROM imap_intake.poll WHERE workspace=%s AND id=%s").format(_POLL_COLUMNS),
                           (workspace, poll_id)).fetchone()
        if poll is None:
            return None
        messages = cur.execute(
            sql.SQL("SELECT {} FROM imap_intake.message WHERE workspace=%s AND poll_id=%s ORDER BY id LIMIT 500").format(_MESSAGE_COLUMNS),
            (workspace, poll_id)).fetchall()
    return {"workspace": workspace, "poll": poll, "messages": messages}
