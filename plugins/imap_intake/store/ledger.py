"""The intake ledger: messages, attachments, skipped parts, cursors and polls, in one transaction per batch.

Exactly-once comes from the database: unique keys and ``ON CONFLICT DO NOTHING``, a
session advisory lock per (account, folder) so overlapping polls queue, and the cursor
written in the same transaction as the messages it covers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg

from imap_intake.mime.extract import Attachment, SkippedPart


@dataclass(frozen=True)
class Cursor:
    uidvalidity: int
    last_uid: int


@dataclass(frozen=True)
class MessageRecord:
    uidvalidity: int
    uid: int
    fingerprint: str
    message_id: str | None
    internal_date: dt.datetime
    sender: str | None
    subject: str
    size: int
    outcome: str
    reason: str
    supplier: str | None = None
    supplier_rule: str | None = None
    attachments: tuple[Attachment, ...] = field(default=(), repr=False)
    skipped: tuple[SkippedPart, ...] = ()


@dataclass
class BatchResult:
    recorded: int = 0
    duplicates: int = 0
    already_known: int = 0
    attachments: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


def lock_key(account: str, folder: str) -> int:
    digest = hashlib.sha256(f"imap-intake\0{account}\0{folder}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Ledger:
    def __init__(self, connection: psycopg.Connection, *, workspace: str, account: str, folder: str) -> None:
        self.connection = connection
        self.workspace = workspace
        self.account = account
        self.folder = folder

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the (account, folder) advisory lock: a second poll waits, then finds nothing new."""
        key = lock_key(self.account, self.folder)
        self.connection.execute("SELECT pg_advisory_lock(%s)", (key,))
        try:
            yield
        finally:
            if not self.connection.closed:
                self.connection.execute("SELECT pg_advisory_unlock(%s)", (key,))

    def cursor(self) -> Cursor | None:
        row = self.connection.execute(
            "SELECT uidvalidity, last_uid FROM imap_intake.cursor WHERE workspace=%s AND account=%s AND folder=%s",
            (self.workspace, self.account, self.folder),
        ).fetchone()
        return Cursor(int(row[0]), int(row[1])) if row else None

    def known_uids(self, uidvalidity: int, uids: Sequence[int]) -> set[int]:
        if not uids:
            return set()
        rows = self.connection.execute(
            "SELECT uid FROM imap_intake.message WHERE workspace=%s AND account=%s AND folder=%s "
            "AND uidvalidity=%s AND uid = ANY(%s)",
            (self.workspace, self.account, self.folder, uidvalidity, list(uids)),
        ).fetchall()
        return {int(r[0]) for r in rows}

    def start_poll(self, mode: str, now: dt.datetime) -> int:
        row = self.connection.execute(
            "INSERT INTO imap_intake.poll (workspace, account, folder, mode, started_at) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (self.workspace, self.account, self.folder, mode, now),
        ).fetchone()
        assert row is not None
        return int(row[0])

    def finish_poll(self, poll_id: int, *, status: str, fetched: int, imported: int, now: dt.datetime, error: str | None = None) -> None:
        self.connection.execute(
            "UPDATE imap_intake.poll SET status=%s, fetched=%s, imported=%s, finished_at=%s, error=%s WHERE id=%s",
            (status, fetched, imported, now, error, poll_id),
        )

    def _advance_cursor(self, cursor: Cursor) -> None:
        # Never backwards within one UIDVALIDITY; a new UIDVALIDITY replaces the old cursor.
        self.connection.execute(
            """
            INSERT INTO imap_intake.cursor (workspace, account, folder, uidvalidity, last_uid, updated_at)
            VALUES (%s, %s, %s, %s, %s, now())
            ON CONFLICT (workspace, account, folder) DO UPDATE SET
                last_uid = CASE WHEN imap_intake.cursor.uidvalidity = EXCLUDED.uidvalidity
                                THEN GREATEST(imap_intake.cursor.last_uid, EXCLUDED.last_uid)
                                ELSE EXCLUDED.last_uid END,
                uidvalidity = EXCLUDED.uidvalidity,
                updated_at = now()
            """,
            (self.workspace, self.account, self.folder, cursor.uidvalidity, cursor.last_uid),
        )

    def record_batch(
        self,
        records: Sequence[MessageRecord],
        *,
        store: Callable[[Attachment], str],
        advance_to: Cursor | None,
        poll_id: int | None = None,
    ) -> BatchResult:
        """Record a batch and move the cursor, all or nothing. ``store`` writes bytes, returns a URI."""
        result = BatchResult()
        with self.connection.transaction():
            for record in records:
                self._record_one(record, store=store, poll_id=poll_id, result=result)
            if advance_to is not None:
                self._advance_cursor(advance_to)
        return result

    def _insert_message(self, record: MessageRecord, outcome: str, reason: str, duplicate_of: int | None, poll_id: int | None) -> int | None:
        row = self.connection.execute(
            """
            INSERT INTO imap_intake.message (workspace, account, folder, uidvalidity, uid, fingerprint,
                message_id, internal_date, sender, subject, size, outcome, reason, supplier, supplier_rule,
                duplicate_of, poll_id)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT DO NOTHING RETURNING id
            """,
            (self.workspace, self.account, self.folder, record.uidvalidity, record.uid, record.fingerprint,
             record.message_id, record.internal_date, record.sender, record.subject, record.size, outcome,
             reason, record.supplier, record.supplier_rule, duplicate_of, poll_id),
        ).fetchone()
        return int(row[0]) if row else None

    def _record_one(self, record: MessageRecord, *, store: Callable[[Attachment], str], poll_id: int | None, result: BatchResult) -> None:
        message = self._insert_message(record, record.outcome, record.reason, None, poll_id)
        if message is None:
            if self.known_uids(record.uidvalidity, [record.uid]):
                result.already_known += 1
                return
            first = self.connection.execute(
                "SELECT id, uidvalidity, uid FROM imap_intake.message WHERE workspace=%s AND fingerprint=%s AND outcome <> 'duplicate'",
                (self.workspace, record.fingerprint),
            ).fetchone()
            reason = (
                f"already recorded as message {first[0]} (UIDVALIDITY {first[1]}, UID {first[2]})" if first
                else "already recorded"
            )
            if self._insert_message(record, "duplicate", reason, first[0] if first else None, poll_id) is not None:
                result.duplicates += 1
                result.outcomes["duplicate"] = result.outcomes.get("duplicate", 0) + 1
            return
        result.recorded += 1
        result.outcomes[record.outcome] = result.outcomes.get(record.outcome, 0) + 1
        if record.outcome == "imported":
            for attachment in record.attachments:
                uri = store(attachment)
                inserted = self.connection.execute(
                    """
                    INSERT INTO imap_intake.attachment (workspace, message, fingerprint, part_index,
                        original_filename, filename, content_type, kind, sha256, size, storage_uri, supplier)
                    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                    ON CONFLICT (workspace, fingerprint, part_index) DO NOTHING RETURNING id
                    """,
                    (self.workspace, message, record.fingerprint, attachment.index, attachment.original_filename,
                     attachment.filename, attachment.declared_type, attachment.kind, attachment.sha256,
                     attachment.size, uri, record.supplier),
                ).fetchone()
                result.attachments += 1 if inserted else 0
        for part in record.skipped:
            self.connection.execute(
                "INSERT INTO imap_intake.skipped_part (message, original_filename, kind, size, reason) VALUES (%s, %s, %s, %s, %s)",
                (message, part.original_filename, part.kind, part.size, part.reason),
            )
