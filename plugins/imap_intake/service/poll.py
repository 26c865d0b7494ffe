"""One poll of one workspace's mailbox folder, exactly once.

Modes: ``first`` (no cursor: messages since the workspace's start_date), ``incremental``
(UIDs above the cursor; no SEARCH at all when UIDNEXT says nothing arrived), ``rescan``
(UIDVALIDITY changed: everything since start_date again, duplicates recognised by
fingerprint) and ``backfill`` (a date window; the cursor is never moved).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field

import psycopg

from imap_intake.config import Workspace
from imap_intake.imap.mailbox import FetchedMessage, Mailbox, MessageMeta
from imap_intake.imap.settings import ConnectionSettings
from imap_intake.mime.extract import Attachment, ExtractedMessage, Limits, extract, fingerprint
from imap_intake.routing import attribute, ownership
from imap_intake.store.ledger import BatchResult, Cursor, Ledger, MessageRecord, is_transient

log = logging.getLogger(__name__)
BODY_BYTES_PER_FETCH = 32 * 1024 * 1024

MailboxOpener = Callable[[ConnectionSettings], AbstractContextManager[Mailbox]]


@dataclass(frozen=True)
class Window:
    """A backfill window [since, until) by INTERNALDATE."""

    since: dt.datetime
    until: dt.datetime

    def contains(self, moment: dt.datetime) -> bool:
        return self.since <= moment < self.until


@dataclass
class PollResult:
    workspace: str
    folder: str
    mode: str
    uidvalidity: int = 0
    candidates: int = 0
    fetched: int = 0
    recorded: int = 0
    duplicates: int = 0
    attachments: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    cursor_uid: int | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _batches(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def classify(workspace: Workspace, settings: ConnectionSettings, extracted: ExtractedMessage) -> tuple[str, str, str | None, str | None]:
    """(outcome, reason, supplier, rule) for one extracted message. Pure."""
    not_ours = ownership(workspace, extracted.recipients)
    if not_ours:
        return "not_routed", not_ours, None, None
    if not extracted.attachments:
        if not extracted.skipped:
            return "no_supported_attachment", "no attachments", None, None
        reasons = "; ".join(f"{p.original_filename or '(unnamed)'}: {p.reason}" for p in extracted.skipped)
        too_large = any(p.reason.startswith("too large") for p in extracted.skipped)
        return ("too_large" if too_large else "no_supported_attachment"), reasons, None, None
    supplier = attribute(workspace, extracted.sender, settings.default_supplier, forwarded_senders=extracted.forwarded_senders)
    if not supplier.routed:
        return "not_routed", supplier.reason, None, None
    names = ", ".join(a.filename for a in extracted.attachments)
    return "imported", f"{len(extracted.attachments)} attachment(s): {names}"[:2000], supplier.supplier, supplier.rule


def record_for(workspace: Workspace, settings: ConnectionSettings, uidvalidity: int, message: FetchedMessage, limits: Limits) -> MessageRecord:
    try:
        extracted = extract(message.raw, limits)
    except Exception as exc:  # noqa: BLE001 - recorded as an outcome, never lost: see the reason column
        log.warning("UID %s: extraction failed (%s: %s); recorded as failed, the folder moves on", message.uid, type(exc).__name__, exc)
        return MessageRecord(
            uidvalidity=uidvalidity, uid=message.uid, fingerprint=fingerprint(message.raw, None), message_id=None,
            internal_date=message.internal_date, sender=None, subject="", size=len(message.raw), outcome="failed",
            reason=f"extraction failed: {type(exc).__name__}: {exc}; after a fix, run 'imap-intake reread' for this workspace"[:2000],
        )
    outcome, reason, supplier, rule = classify(workspace, settings, extracted)
    return MessageRecord(
        uidvalidity=uidvalidity, uid=message.uid, fingerprint=fingerprint(message.raw, extracted.message_id),
        message_id=extracted.message_id, internal_date=message.internal_date, sender=extracted.sender,
        subject=extracted.subject, size=len(message.raw), outcome=outcome, reason=reason, supplier=supplier,
        supplier_rule=rule, attachments=extracted.attachments if outcome == "imported" else (),
        skipped=extracted.skipped,
    )


def _too_large(uidvalidity: int, meta: MessageMeta, limit: int) -> MessageRecord:
    return MessageRecord(
        uidvalidity=uidvalidity, uid=meta.uid, fingerprint=f"uid:{uidvalidity}:{meta.uid}", message_id=None,
        internal_date=meta.internal_date, sender=None, subject="", size=meta.size, outcome="too_large",
        reason=f"message is {meta.size} bytes, over max_message_mb ({limit} bytes); not downloaded",
    )


def _groups(metas: Sequence[MessageMeta], max_message_bytes: int) -> Iterator[Sequence[MessageMeta]]:
    """Contiguous runs of messages (UID order) whose bodies add up to at most BODY_BYTES_PER_FETCH
    (a larger message goes alone): each run is fetched and committed together, so memory follows
    this bound, not the mailbox or the batch size."""
    group: list[MessageMeta] = []
    size = 0
    for meta in metas:
        weight = meta.size if meta.size <= max_message_bytes else 0  # too large: never downloaded
        if group and size + weight > BODY_BYTES_PER_FETCH:
            yield group
            group, size = [], 0
        group.append(meta)
        size += weight
    if group:
        yield group


def _record(
    ledger: Ledger,
    records: list[MessageRecord],
    *,
    store: Callable[[Attachment], str],
    advance_to: Cursor | None,
    poll_id: int,
    probe_store: Callable[[], object] | None,
) -> BatchResult:
    """One transaction for the batch; if it fails for a reason tied to a message (not a lost
    connection or a store that is down), again message by message, so one poison message gets
    the outcome ``failed`` and never blocks the folder."""
    try:
        return ledger.record_batch(records, store=store, advance_to=advance_to, poll_id=poll_id)
    except Exception as exc:
        if is_transient(exc) or ledger.connection.broken or ledger.connection.closed:
            raise
        log.warning(
            "recording UIDs %s-%s as one batch failed (%s: %s); recording them one by one",
            records[0].uid if records else "-", records[-1].uid if records else "-", type(exc).__name__, exc,
        )
        done = ledger.record_each(records, store=store, advance_to=advance_to, poll_id=poll_id, probe_store=probe_store)
        if done.outcomes.get("failed"):
            log.warning("%d message(s) recorded as failed; 'imap-intake status' lists them with the reason", done.outcomes["failed"])
        return done


def poll(
    workspace: Workspace,
    settings: ConnectionSettings,
    *,
    connection: psycopg.Connection,
    store: Callable[[Attachment], str],
    now: dt.datetime,
    window: Window | None = None,
    open_mailbox: MailboxOpener = Mailbox.open,
    probe_store: Callable[[], object] | None = None,
) -> PollResult:
    folder = workspace.folder or settings.folder
    ledger = Ledger(connection, workspace=workspace.slug, account=settings.account, folder=folder)
    limits = Limits(max_attachment_bytes=workspace.max_attachment_bytes, accepted=workspace.accepted_types)
    with ledger.exclusive():
        cursor = ledger.cursor()
        poll_id = ledger.start_poll("backfill" if window else "poll", now)
        result = PollResult(workspace=workspace.slug, folder=folder, mode="backfill")
        try:
            with open_mailbox(settings) as mailbox:
                state = mailbox.examine(folder)
                result.uidvalidity = state.uidvalidity
                if window:
                    uids = mailbox.uids_between(window.since.date(), (window.until + dt.timedelta(days=1)).date())
                elif cursor is None or cursor.uidvalidity != state.uidvalidity:
                    result.mode = "first" if cursor is None else "rescan"
                    if cursor is not None:
                        log.warning(
                            "%s folder '%s': UIDVALIDITY changed from %s to %s (folder recreated or mailbox "
                            "migrated): rescanning since %s; messages already imported are recognised as duplicates",
                            settings.describe, folder, cursor.uidvalidity, state.uidvalidity, workspace.start_date,
                        )
                    uids = mailbox.uids_between(workspace.start_date, None)
                else:
                    result.mode = "incremental"
                    uids = [] if state.uidnext - 1 <= cursor.last_uid else mailbox.uids_above(cursor.last_uid)
                known: set[int] = set()
                for chunk in _batches(uids, 5000):
                    known |= ledger.known_uids(state.uidvalidity, chunk)
                todo = [uid for uid in uids if uid not in known]
                result.candidates = len(todo)
                log.info(
                    "%s folder '%s' (%s, UIDVALIDITY %s, UIDNEXT %s): %d new message(s) to read, %d already in the ledger",
                    settings.describe, folder, result.mode, state.uidvalidity, state.uidnext, len(todo), len(known),
                )
                total = (len(todo) + workspace.batch_size - 1) // workspace.batch_size
                for number, batch in enumerate(_batches(todo, workspace.batch_size), start=1):
                    metas = mailbox.metadata(batch)
                    if window:
                        metas = [m for m in metas if window.contains(m.internal_date)]
                    for group in _groups(metas, workspace.max_message_bytes):
                        records: list[MessageRecord] = []
                        wanted = [m.uid for m in group if m.size <= workspace.max_message_bytes]
                        bodies = {m.uid: m for m in mailbox.bodies(wanted)} if wanted else {}
                        for meta in group:
                            if meta.size > workspace.max_message_bytes:
                                records.append(_too_large(state.uidvalidity, meta, workspace.max_message_bytes))
                            elif meta.uid in bodies:  # absent: expunged since the search
                                result.fetched += 1
                                records.append(record_for(workspace, settings, state.uidvalidity, bodies.pop(meta.uid), limits))
                        del bodies
                        # The group is contiguous in UID order, so everything up to its last UID is recorded.
                        advance = None if window else Cursor(state.uidvalidity, group[-1].uid)
                        done = _record(ledger, records, store=store, advance_to=advance, poll_id=poll_id, probe_store=probe_store)
                        result.recorded += done.recorded
                        result.duplicates += done.duplicates
                        result.attachments += done.attachments
                        for outcome, count in done.outcomes.items():
                            result.outcomes[outcome] = result.outcomes.get(outcome, 0) + count
                        log.info(
                            "batch %d/%d: UIDs %d-%d: %d recorded, %d duplicate(s), %d attachment(s) stored",
                            number, total, group[0].uid, group[-1].uid, done.recorded, done.duplicates, done.attachments,
                        )
                if not window:
                    # Everything below UIDNEXT was either read or is older than start_date.
                    ledger.record_batch([], store=store, advance_to=Cursor(state.uidvalidity, max(state.uidnext - 1, 0)))
            final = ledger.cursor()
            result.cursor_uid = final.last_uid if final else None
        except BaseException as exc:
            if not connection.closed and not connection.broken:
                ledger.finish_poll(poll_id, status="failed", fetched=result.fetched, imported=result.attachments, now=now, error=str(exc)[:2000])
            raise
        ledger.finish_poll(poll_id, status="ok", fetched=result.fetched, imported=result.attachments, now=now)
    return result
