"""Reading fetched messages into ledger records: extraction, classification, size limits. Pure
apart from the records' shape; shared by the poll and the re-read."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

from imap_intake.config import Workspace
from imap_intake.imap.mailbox import FetchedMessage, Mailbox, MessageMeta
from imap_intake.imap.settings import ConnectionSettings
from imap_intake.mime.extract import ExtractedMessage, Limits, extract, fingerprint
from imap_intake.routing import attribute, ownership
from imap_intake.store.ledger import MessageRecord

log = logging.getLogger(__name__)
BODY_BYTES_PER_FETCH = 32 * 1024 * 1024

MailboxOpener = Callable[[ConnectionSettings], AbstractContextManager[Mailbox]]


def classify(workspace: Workspace, default_supplier: str | None, extracted: ExtractedMessage) -> tuple[str, str, str | None, str | None]:
    """(outcome, reason, supplier, rule) for one extracted message; ``default_supplier`` is the
    connection's (the workspace's own wins). Pure."""
    not_ours = ownership(workspace, extracted.recipients)
    if not_ours:
        return "not_routed", not_ours, None, None
    if not extracted.attachments:
        if not extracted.skipped:
            return "no_supported_attachment", "no attachments", None, None
        reasons = "; ".join(f"{p.original_filename or '(unnamed)'}: {p.reason}" for p in extracted.skipped)
        too_large = any(p.reason.startswith("too large") for p in extracted.skipped)
        return ("too_large" if too_large else "no_supported_attachment"), reasons, None, None
    supplier = attribute(workspace, extracted.sender, default_supplier, forwarded_senders=extracted.forwarded_senders)
    if not supplier.routed:
        return "not_routed", supplier.reason, None, None
    names = ", ".join(a.filename for a in extracted.attachments)
    return "imported", f"{len(extracted.attachments)} attachment(s): {names}"[:2000], supplier.supplier, supplier.rule


def record_for(workspace: Workspace, default_supplier: str | None, uidvalidity: int, message: FetchedMessage, limits: Limits) -> MessageRecord:
    try:
        extracted = extract(message.raw, limits)
    except Exception as exc:  # noqa: BLE001 - recorded as an outcome, never lost: see the reason column
        log.warning("UID %s: extraction failed (%s: %s); recorded as failed, the folder moves on", message.uid, type(exc).__name__, exc)
        return MessageRecord(
            uidvalidity=uidvalidity, uid=message.uid, fingerprint=fingerprint(message.raw, None), message_id=None,
            internal_date=message.internal_date, sender=None, subject="", size=len(message.raw), outcome="failed",
            reason=f"extraction failed: {type(exc).__name__}: {exc}; after a fix, run 'imap-intake reread' for this workspace"[:2000],
        )
    outcome, reason, supplier, rule = classify(workspace, default_supplier, extracted)
    return MessageRecord(
        uidvalidity=uidvalidity, uid=message.uid, fingerprint=fingerprint(message.raw, extracted.message_id),
        message_id=extracted.message_id, internal_date=message.internal_date, sender=extracted.sender,
        subject=extracted.subject, size=len(message.raw), outcome=outcome, reason=reason, supplier=supplier,
        supplier_rule=rule, attachments=extracted.attachments if outcome == "imported" else (),
        skipped=extracted.skipped,
    )


def too_large(uidvalidity: int, meta: MessageMeta, limit: int) -> MessageRecord:
    return MessageRecord(
        uidvalidity=uidvalidity, uid=meta.uid, fingerprint=f"uid:{uidvalidity}:{meta.uid}", message_id=None,
        internal_date=meta.internal_date, sender=None, subject="", size=meta.size, outcome="too_large",
        reason=f"message is {meta.size} bytes, over max_message_mb ({limit} bytes); not downloaded",
    )


def groups(metas: Sequence[MessageMeta], max_message_bytes: int) -> Iterator[Sequence[MessageMeta]]:
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


@dataclass(frozen=True)
class FetchedGroup:
    """One group of messages as read from the server: their metadata (UID order), the bodies of those
    not too large to download, and the UID batch it belongs to (1-based, for the logs)."""

    batch: int
    metas: Sequence[MessageMeta]
    bodies: dict[int, FetchedMessage]
    weight: int


def _weight(group: Sequence[MessageMeta], max_message_bytes: int) -> int:
    return sum(m.size for m in group if m.size <= max_message_bytes)


# Sizes and dates of this many UIDs per FETCH: one round trip per 10 batches of 50, and a command line of
# at most ~8 KB (imapclient lists UIDs one by one; servers limit the line: Dovecot to 64 KB).
METADATA_UIDS = 1000


def _with_metadata(mailbox: Mailbox, uid_batches: Iterable[Sequence[int]]) -> Iterator[tuple[int, list[MessageMeta]]]:
    """Each batch (numbered from 1) with its messages' sizes and dates, fetched for up to
    ``METADATA_UIDS`` UIDs at once (one round trip, not one per batch); expunged UIDs have none."""
    numbered = enumerate(uid_batches, start=1)
    while True:
        chunk: list[tuple[int, Sequence[int]]] = []
        count = 0
        for number, batch in numbered:
            chunk.append((number, batch))
            count += len(batch)
            if count >= METADATA_UIDS:
                break
        if not chunk:
            return
        by_uid = {meta.uid: meta for meta in mailbox.metadata([uid for _, batch in chunk for uid in batch])}
        for number, batch in chunk:
            yield number, [by_uid[uid] for uid in sorted(batch) if uid in by_uid]


def read_ahead(mailbox: Mailbox, uid_batches: Iterable[Sequence[int]], *, max_message_bytes: int,
               keep: Callable[[MessageMeta], bool] | None = None,
               ahead_bytes: int = BODY_BYTES_PER_FETCH) -> Generator[FetchedGroup, None, None]:
    """The groups of ``uid_batches``, read by a thread of their own while the caller extracts and
    records the previous group: the IMAP round trips (metadata, then bodies) overlap the parsing and
    the ledger's writes. The thread is the only user of ``mailbox`` until the iteration ends. Memory
    stays bounded: a group is read ahead only while the bodies held (being recorded plus read ahead)
    stay within ``ahead_bytes``, so a group as large as the bound is read only once the one before
    it was recorded. The reader's errors are raised here, in the caller's thread."""
    lock = threading.Condition()
    ready: deque[FetchedGroup | BaseException | None] = deque()
    held = [0]
    stopping = threading.Event()

    def reader() -> None:
        outcome: BaseException | None = None
        try:
            for number, metas in _with_metadata(mailbox, uid_batches):
                if keep is not None:
                    metas = [m for m in metas if keep(m)]
                for group in groups(metas, max_message_bytes):
                    weight = _weight(group, max_message_bytes)
                    with lock:
                        while not (stopping.is_set() or held[0] == 0 or held[0] + weight <= ahead_bytes):
                            lock.wait()
                        if stopping.is_set():
                            return
                        held[0] += weight
                    wanted = [m.uid for m in group if m.size <= max_message_bytes]
                    bodies = {m.uid: m for m in mailbox.bodies(wanted)} if wanted else {}
                    with lock:
                        ready.append(FetchedGroup(number, group, bodies, weight))
                        lock.notify_all()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, raised there
            outcome = exc
        finally:
            with lock:
                ready.append(outcome)
                lock.notify_all()

    thread = threading.Thread(target=reader, name="imap-intake-reader", daemon=True)
    thread.start()
    try:
        while True:
            with lock:
                lock.wait_for(lambda: bool(ready))
                item = ready.popleft()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
            with lock:
                held[0] -= item.weight
                lock.notify_all()
    finally:
        stopping.set()
        with lock:
            lock.notify_all()
        thread.join()


def read_group(workspace: Workspace, default_supplier: str | None, uidvalidity: int, fetched: FetchedGroup,
               limits: Limits) -> list[tuple[MessageMeta, MessageRecord | None]]:
    """Each message of a fetched group with its record (a too-large one without downloading it;
    ``None`` when it was expunged since it was listed)."""
    read: list[tuple[MessageMeta, MessageRecord | None]] = []
    for meta in fetched.metas:
        if meta.size > workspace.max_message_bytes:
            read.append((meta, too_large(uidvalidity, meta, workspace.max_message_bytes)))
        elif meta.uid in fetched.bodies:
            read.append((meta, record_for(workspace, default_supplier, uidvalidity, fetched.bodies.pop(meta.uid), limits)))
        else:
            read.append((meta, None))
    return read


def limits_of(workspace: Workspace) -> Limits:
    return Limits(max_attachment_bytes=workspace.max_attachment_bytes, accepted=workspace.accepted_types)
