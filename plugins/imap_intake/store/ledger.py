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
from typing import Any

import psycopg

from imap_intake.exceptions import StorageError
from imap_intake.mime.extract import Attachment, SkippedPart
from imap_intake.store.storable import storable, storable_or_none


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

    def count(self, outcome: str, n: int = 1) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + n

    def add(self, other: BatchResult) -> None:
        self.recorded += other.recorded
        self.duplicates += other.duplicates
        self.already_known += other.already_known
        self.attachments += other.attachments
        for outcome, n in other.outcomes.items():
            self.count(outcome, n)


def is_transient(exc: BaseException) -> bool:
    """A fault of the surroundings, not of one message: roll back and let the next poll retry.

    Lost or restarted Postgres, an unreachable mailbox or ledger. Storage errors are decided
    by a probe of the store (see ``Ledger.record_each``), everything else is the message's.
    """
    if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
        return True
    if isinstance(exc, StorageError):
        return False
    return bool(getattr(exc, "retryable", False)) or isinstance(exc, (ConnectionError, TimeoutError))


def failed_record(record: MessageRecord, exc: BaseException) -> MessageRecord:
    """The record of a message whose recording failed: no attachments, the error as the reason."""
    return MessageRecord(
        uidvalidity=record.uidvalidity, uid=record.uid, fingerprint=record.fingerprint, message_id=record.message_id,
        internal_date=record.internal_date, sender=record.sender, subject=record.subject, size=record.size,
        outcome="failed",
        reason=f"recording failed: {type(exc).__name__}: {exc}; fix the cause, then run 'imap-intake reread' for this workspace",
    )


def _text_columns(record: MessageRecord, reason: str) -> tuple[str | None, ...]:
    """A message row's text columns, storable, in this order: fingerprint, message_id, sender,
    subject, reason, supplier, supplier_rule (as the INSERT and the re-read's UPDATE list them)."""
    return (storable(record.fingerprint, 200), storable_or_none(record.message_id, 500), storable_or_none(record.sender, 998),
            storable(record.subject, 998), storable(reason), storable_or_none(record.supplier, 200),
            storable_or_none(record.supplier_rule, 500))


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as one list per column (the arrays an ``unnest`` insert takes)."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def lock_key(account: str, folder: str) -> int:
    digest = hashlib.sha256(f"imap-intake\0{account}\0{folder}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def durable_transaction(connection: psycopg.Connection, store: object) -> Iterator[None]:
    """One transaction whose staged attachment files (``store.settle``) are made durable just before
    COMMIT, and dropped (``store.discard``) when it rolls back. A plain callable store has neither."""
    try:
        with connection.transaction():
            yield
            settle = getattr(store, "settle", None)
            if settle is not None:
                settle()
    except BaseException:
        discard = getattr(store, "discard", None)
        if discard is not None:
            discard()
        raise


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

    def start_poll(self, mode: str, *, run_id: str | None = None) -> int:
        """A poll row; its start and finish are the database's wall clock (``clock_timestamp()``), so
        they show how long the poll really held its session (the run's ``now`` is one instant).
        ``run_id``: the Airflow run that polls (the status page links to it)."""
        row = self.connection.execute(
            "INSERT INTO imap_intake.poll (workspace, account, folder, mode, started_at, run_id) "
            "VALUES (%s, %s, %s, %s, clock_timestamp(), %s) RETURNING id",
            (self.workspace, self.account, self.folder, mode, run_id),
        ).fetchone()
        assert row is not None
        return int(row[0])

    def refused_poll(self, mode: str, *, error: str, run_id: str | None = None,
                     since: dt.datetime | None = None, until: dt.datetime | None = None) -> int:
        """A poll that could not start (a refused window, a connection that cannot be read): recorded
        as failed with the reason, so the status page shows it beside the polls that ran."""
        row = self.connection.execute(
            "INSERT INTO imap_intake.poll (workspace, account, folder, mode, started_at, finished_at, status, error, run_id, "
            "since, until) VALUES (%s, %s, %s, %s, clock_timestamp(), clock_timestamp(), 'failed', %s, %s, %s, %s) RETURNING id",
            (self.workspace, self.account, self.folder, mode, storable_or_none(error), run_id, since, until),
        ).fetchone()
        assert row is not None
        return int(row[0])

    def finish_poll(self, poll_id: int, *, status: str, fetched: int, imported: int, error: str | None = None) -> None:
        self.connection.execute(
            "UPDATE imap_intake.poll SET status=%s, fetched=%s, imported=%s, finished_at=clock_timestamp(), error=%s WHERE id=%s",
            (status, fetched, imported, storable_or_none(error), poll_id),
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
            -- A poll that finds nothing new leaves the row (and its "moved" time) as it was.
            WHERE imap_intake.cursor.uidvalidity <> EXCLUDED.uidvalidity OR imap_intake.cursor.last_uid < EXCLUDED.last_uid
            """,
            (self.workspace, self.account, self.folder, cursor.uidvalidity, cursor.last_uid),
        )

    def record_each(
        self,
        records: Sequence[MessageRecord],
        *,
        store: Callable[[Attachment], str],
        advance_to: Cursor | None,
        poll_id: int | None = None,
        probe_store: Callable[[], object] | None = None,
    ) -> BatchResult:
        """Record a batch one message per transaction, after the batch as a whole failed.

        A message whose recording raises gets the outcome ``failed`` with the error, and the
        cursor still moves past it. Transient faults are raised (nothing of the failing message
        is committed); a storage error counts as the message's only if the store answers a probe.
        """
        result = BatchResult()
        for record in records:
            one = BatchResult()  # counted only once its transaction commits
            try:
                with durable_transaction(self.connection, store):
                    self._record([record], store=store, poll_id=poll_id, result=one)
            except Exception as exc:
                if is_transient(exc) or self.connection.broken or self.connection.closed:
                    raise
                if isinstance(exc, StorageError):
                    if probe_store is None:
                        raise  # no way to tell a refused object from a store that is down: retry later
                    probe_store()  # raises StorageError when the store itself is down: retried later
                one = BatchResult()
                with durable_transaction(self.connection, store):
                    self._record([failed_record(record, exc)], store=store, poll_id=poll_id, result=one)
            result.add(one)
        if advance_to is not None:
            with self.connection.transaction():
                self._advance_cursor(advance_to)
        return result

    def record_batch(
        self,
        records: Sequence[MessageRecord],
        *,
        store: Callable[[Attachment], str],
        advance_to: Cursor | None,
        poll_id: int | None = None,
    ) -> BatchResult:
        """Record a batch and move the cursor, all or nothing. ``store`` writes bytes, returns a URI.

        Set-based: one ``INSERT ... SELECT FROM unnest(...)`` per table (the rows as one array per
        column), in UID order, so each row still meets the unique keys in turn (a copy later in the
        batch conflicts with its first sighting and takes the duplicate path) in one round trip."""
        result = BatchResult()
        with durable_transaction(self.connection, store):
            self._record(records, store=store, poll_id=poll_id, result=result)
            if advance_to is not None:
                self._advance_cursor(advance_to)
        return result

    # One statement per table and batch (see record_batch): rows as one array per column, in their order.
    _INSERT_MESSAGES = """
        INSERT INTO imap_intake.message (workspace, account, folder, uidvalidity, uid, internal_date, size, outcome,
            duplicate_of, poll_id, fingerprint, message_id, sender, subject, reason, supplier, supplier_rule)
        SELECT %s::text, %s::text, %s::text, r.uidvalidity, r.uid, r.internal_date, r.size, r.outcome,
            r.duplicate_of, %s::bigint, r.fingerprint, r.message_id, r.sender, r.subject, r.reason, r.supplier, r.supplier_rule
        FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[], %s::bigint[], %s::text[], %s::bigint[],
                    %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[])
             WITH ORDINALITY AS r(uidvalidity, uid, internal_date, size, outcome, duplicate_of,
                                  fingerprint, message_id, sender, subject, reason, supplier, supplier_rule, n)
        ORDER BY r.n
        ON CONFLICT DO NOTHING RETURNING id, uidvalidity, uid
    """
    _INSERT_ATTACHMENTS = """
        INSERT INTO imap_intake.attachment (workspace, message, fingerprint, part_index,
            original_filename, filename, content_type, kind, sha256, size, storage_uri, supplier)
        SELECT r.workspace, r.message, r.fingerprint, r.part_index, r.original_filename, r.filename, r.content_type,
            r.kind, r.sha256, r.size, r.storage_uri, r.supplier
        FROM unnest(%s::text[], %s::bigint[], %s::text[], %s::integer[], %s::text[], %s::text[], %s::text[],
                    %s::text[], %s::text[], %s::bigint[], %s::text[], %s::text[])
             WITH ORDINALITY AS r(workspace, message, fingerprint, part_index, original_filename, filename,
                                  content_type, kind, sha256, size, storage_uri, supplier, n)
        ORDER BY r.n
        ON CONFLICT (workspace, fingerprint, part_index) DO NOTHING RETURNING id
    """
    _INSERT_SKIPPED = """
        INSERT INTO imap_intake.skipped_part (message, original_filename, kind, size, reason)
        SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::bigint[], %s::text[])
    """

    def _insert_messages(self, rows: Sequence[tuple[MessageRecord, str, str, int | None]], poll_id: int | None) -> list[int | None]:
        """The new rows' ids in the order given, None where a conflict inserted nothing."""
        if not rows:
            return []
        columns = _columns([
            (record.uidvalidity, record.uid, record.internal_date, record.size, outcome, duplicate_of, *_text_columns(record, reason))
            for record, outcome, reason, duplicate_of in rows
        ], 13)
        returned = self.connection.execute(self._INSERT_MESSAGES, (self.workspace, self.account, self.folder, poll_id, *columns))
        inserted = {(int(validity), int(uid)): int(id_) for id_, validity, uid in returned.fetchall()}
        # A UID is inserted at most once (unique key), by its first row in the order given.
        return [inserted.pop((record.uidvalidity, record.uid), None) for record, *_ in rows]

    def _conflict(self, record: MessageRecord, poll_id: int | None, result: BatchResult) -> None:
        """A message row that inserted nothing: this UID is already known, or it is a copy."""
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
        if self._insert_messages([(record, "duplicate", reason, first[0] if first else None)], poll_id) != [None]:
            result.duplicates += 1
            result.count("duplicate")

    def _record(self, records: Sequence[MessageRecord], *, store: Callable[[Attachment], str], poll_id: int | None,
                result: BatchResult) -> None:
        """Insert messages, then their attachments and skipped parts, each table in one statement."""
        ids = self._insert_messages([(r, r.outcome, r.reason, None) for r in records], poll_id)
        attachments: list[tuple[Any, ...]] = []
        skipped: list[tuple[Any, ...]] = []
        for record, message in zip(records, ids, strict=True):
            if message is None:
                self._conflict(record, poll_id, result)
                continue
            result.recorded += 1
            result.count(record.outcome)
            attachments += self._attachment_rows(message, record, store)
            skipped += self._skipped_rows(message, record)
        self._insert_attachments(attachments, result)
        self._insert_skipped(skipped)

    def _attachment_rows(self, message: int, record: MessageRecord, store: Callable[[Attachment], str]) -> list[tuple[Any, ...]]:
        """The attachment rows of an imported message, each written to the store first."""
        if record.outcome != "imported":
            return []
        return [
            (self.workspace, message, storable(record.fingerprint, 200), attachment.index,
             storable(attachment.original_filename, 1000), storable(attachment.filename, 255),
             storable(attachment.declared_type, 255), attachment.kind, attachment.sha256,
             attachment.size, store(attachment), storable_or_none(record.supplier, 200))
            for attachment in record.attachments
        ]

    @staticmethod
    def _skipped_rows(message: int, record: MessageRecord) -> list[tuple[Any, ...]]:
        return [(message, storable(part.original_filename, 1000), part.kind, part.size, storable(part.reason))
                for part in record.skipped]

    def _insert_attachments(self, rows: Sequence[tuple[Any, ...]], result: BatchResult) -> None:
        """An attachment already listed for this fingerprint and part is never listed (nor imported) again."""
        if rows:
            result.attachments += len(self.connection.execute(self._INSERT_ATTACHMENTS, _columns(rows, 12)).fetchall())

    def _insert_skipped(self, rows: Sequence[tuple[Any, ...]]) -> None:
        if rows:
            self.connection.execute(self._INSERT_SKIPPED, _columns(rows, 5))

    def _attach(self, message: int, record: MessageRecord, *, store: Callable[[Attachment], str], result: BatchResult) -> None:
        """Store and list one message's attachments and skipped parts."""
        self._insert_attachments(self._attachment_rows(message, record, store), result)
        self._insert_skipped(self._skipped_rows(message, record))

    def reread_targets(self, uidvalidity: int, *, uids: Sequence[int] | None, outcomes: Sequence[str]) -> list[tuple[int, int, str]]:
        """(id, uid, outcome) of the messages to read again in this folder: the given UIDs, else
        every message with one of ``outcomes``. Imported messages and duplicates are never re-read."""
        rows = self.connection.execute(
            "SELECT id, uid, outcome FROM imap_intake.message WHERE workspace=%s AND account=%s AND folder=%s "
            "AND uidvalidity=%s AND outcome NOT IN ('imported', 'duplicate') "
            "AND (CASE WHEN %s::bigint[] IS NULL THEN outcome = ANY(%s) ELSE uid = ANY(%s) END) ORDER BY uid",
            (self.workspace, self.account, self.folder, uidvalidity, list(uids) if uids else None, list(outcomes), list(uids or [])),
        ).fetchall()
        return [(int(r[0]), int(r[1]), str(r[2])) for r in rows]

    def rerecord(self, message: int, record: MessageRecord, *, store: Callable[[Attachment], str], now: dt.datetime, result: BatchResult) -> str:
        """Replace a message's evaluation with a new reading, in one transaction; returns the outcome.

        Attachments go through the same ``ON CONFLICT`` as a poll, so a re-read never lists an
        attachment twice; a message that turns out to be a copy of one already recorded becomes
        a duplicate of it.
        """
        with durable_transaction(self.connection, store):
            try:
                with self.connection.transaction():
                    self.connection.execute(
                        "UPDATE imap_intake.message SET outcome=%s, reread_at=%s, fingerprint=%s, message_id=%s, sender=%s, "
                        "subject=%s, reason=%s, supplier=%s, supplier_rule=%s WHERE id=%s",
                        (record.outcome, now, *_text_columns(record, record.reason), message),
                    )
            except psycopg.errors.UniqueViolation:
                first = self.connection.execute(
                    "SELECT id FROM imap_intake.message WHERE workspace=%s AND fingerprint=%s AND outcome <> 'duplicate'",
                    (self.workspace, record.fingerprint),
                ).fetchone()
                self.connection.execute(
                    "UPDATE imap_intake.message SET outcome='duplicate', reason=%s, duplicate_of=%s, reread_at=%s WHERE id=%s",
                    (f"re-read: a copy of message {first[0] if first else '?'}", first[0] if first else None, now, message),
                )
                result.count("duplicate")
                return "duplicate"
            self.connection.execute("DELETE FROM imap_intake.skipped_part WHERE message=%s", (message,))
            self._attach(message, record, store=store, result=result)
        result.recorded += 1
        result.count(record.outcome)
        return record.outcome

    def rereadable(self, uidvalidity: int, uids: Sequence[int], outcomes: Sequence[str]) -> list[tuple[int, int, str]]:
        """(id, uid, outcome) of those ``uids`` already recorded with one of ``outcomes``."""
        if not uids:
            return []
        rows = self.connection.execute(
            "SELECT id, uid, outcome FROM imap_intake.message WHERE workspace=%s AND account=%s AND folder=%s "
            "AND uidvalidity=%s AND uid = ANY(%s) AND outcome = ANY(%s) ORDER BY uid",
            (self.workspace, self.account, self.folder, uidvalidity, list(uids), list(outcomes)),
        ).fetchall()
        return [(int(r[0]), int(r[1]), str(r[2])) for r in rows]

    def fresh_scan_reaching(self, until: dt.datetime, *, rules: str, fresh_after: dt.datetime) -> tuple[int, dt.datetime, dt.datetime] | None:
        """(id, since, until) of the fresh backfill scan under the same rules that holds ``until`` and
        reaches back furthest: a window inside it needs nothing, one that starts earlier only the gap."""
        row = self.connection.execute(
            "SELECT id, since, until FROM imap_intake.backfill_scan WHERE workspace=%s AND account=%s AND folder=%s "
            "AND rules=%s AND since <= %s AND until >= %s AND scanned_at >= %s ORDER BY since, id DESC LIMIT 1",
            (self.workspace, self.account, self.folder, rules, until, until, fresh_after),
        ).fetchone()
        return (int(row[0]), row[1], row[2]) if row else None

    def record_scan(self, uidvalidity: int, since: dt.datetime, until: dt.datetime, *, rules: str, poll_id: int, now: dt.datetime) -> None:
        self.connection.execute(
            "INSERT INTO imap_intake.backfill_scan (workspace, account, folder, uidvalidity, since, until, rules, poll_id, scanned_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (self.workspace, self.account, self.folder, uidvalidity, since, until, rules, poll_id, now),
        )

    def window_of_poll(self, poll_id: int, since: dt.datetime, until: dt.datetime) -> None:
        self.connection.execute("UPDATE imap_intake.poll SET since=%s, until=%s WHERE id=%s", (since, until, poll_id))
