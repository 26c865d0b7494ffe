"""One poll of one workspace's mailbox folder, exactly once.

Modes: ``first`` (no cursor: messages since the workspace's start_date), ``incremental``
(UIDs above the cursor; no SEARCH at all when UIDNEXT says nothing arrived), ``rescan``
(UIDVALIDITY changed: everything since start_date again, duplicates recognised by
fingerprint) and ``backfill`` (a date window; the cursor is never moved).
"""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field

import psycopg

from imap_intake.config import Workspace
from imap_intake.imap.mailbox import FolderState, Mailbox, MessageMeta
from imap_intake.imap.settings import ConnectionSettings
from imap_intake.mime.extract import Attachment
from imap_intake.service import extractor
from imap_intake.service.reading import FetchedGroup, MailboxOpener, limits_of, read_ahead, read_group
from imap_intake.service.reread import reread_messages
from imap_intake.store.ledger import BatchResult, Cursor, Ledger, MessageRecord, is_transient

log = logging.getLogger(__name__)
#: A backfill sweep's scan serves later backfill runs for this long (under unchanged rules).
SCAN_FRESH_FOR = dt.timedelta(hours=6)
#: Outcomes a backfill reads again when it meets them in its window (rules or limits may have changed).
REEVALUATED = ("failed", "not_routed", "too_large")


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
    reread: int = 0
    covered_by_scan: int | None = None
    window: tuple[str, str] | None = None
    poll_id: int | None = None
    #: Attachments the import tasks would take after this poll (set by ``run_poll``): 0 lets the
    #: DAG skip them instead of starting task processes that find nothing.
    importable: int | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def rules_fingerprint(workspace: Workspace, settings: ConnectionSettings) -> str:
    """What decides a message's outcome: a backfill scan made under other rules covers nothing."""
    decisive = (workspace.supplier_rules, workspace.default_supplier or settings.default_supplier, workspace.recipients,
                sorted(workspace.accepted_types), workspace.max_attachment_mb, workspace.max_message_mb, workspace.start_date)
    return hashlib.sha256(repr(decisive).encode()).hexdigest()[:32]


def _batches(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


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
    sweep_until: dt.datetime | None = None,
    open_mailbox: MailboxOpener = Mailbox.open,
    probe_store: Callable[[], object] | None = None,
    run_id: str | None = None,
) -> PollResult:
    """Poll the folder once. With ``window``: a backfill of [since, until) that never moves the cursor.

    ``sweep_until`` (Airflow backfill runs): scan [window.since, sweep_until) at once and remember
    it, so that the backfill's later runs, whose windows lie inside, finish without an IMAP session.
    """
    folder = workspace.folder or settings.folder
    ledger = Ledger(connection, workspace=workspace.slug, account=settings.account, folder=folder)
    result = PollResult(workspace=workspace.slug, folder=folder, mode="backfill" if window else "poll")
    rules = rules_fingerprint(workspace, settings)
    with ledger.exclusive():
        poll_id = result.poll_id = ledger.start_poll("backfill" if window else "poll", run_id=run_id)
        scan = window
        if window:
            result.window = (window.since.isoformat(), window.until.isoformat())
            ledger.window_of_poll(poll_id, window.since, window.until)
            if sweep_until is not None:
                scan, result.covered_by_scan = plan_sweep(ledger, window, sweep_until, rules=rules, now=now)
                if scan is None:
                    log.info("backfill window %s - %s lies inside backfill scan %s made under the same rules: nothing to read",
                             window.since, window.until, result.covered_by_scan)
                    ledger.finish_poll(poll_id, status="covered", fetched=0, imported=0)
                    return result
        try:
            with open_mailbox(settings) as mailbox:
                state = mailbox.examine(folder)
                result.uidvalidity = state.uidvalidity
                cursor = ledger.cursor()
                uids = _plan(mailbox, state, workspace, settings, scan, cursor, result)
                _drain(mailbox, ledger, state, workspace, settings, uids, scan, result, store=store, poll_id=poll_id, probe_store=probe_store)
                if scan is not None:
                    _reevaluate(mailbox, ledger, state, workspace, settings, uids, result, store=store, now=now)
                    if sweep_until is not None:
                        reach = ledger.fresh_scan_reaching(scan.until, rules=rules, fresh_after=now - SCAN_FRESH_FOR)
                        until = reach[2] if reach and reach[1] <= scan.until else scan.until
                        ledger.record_scan(state.uidvalidity, scan.since, max(until, scan.until), rules=rules, poll_id=poll_id, now=now)
                else:
                    # Everything below UIDNEXT was either read or is older than start_date.
                    ledger.record_batch([], store=store, advance_to=Cursor(state.uidvalidity, max(state.uidnext - 1, 0)))
            final = ledger.cursor()
            result.cursor_uid = final.last_uid if final else None
        except BaseException as exc:
            if not connection.closed and not connection.broken:
                ledger.finish_poll(poll_id, status="failed", fetched=result.fetched, imported=result.attachments, error=str(exc)[:2000])
            raise
        ledger.finish_poll(poll_id, status="ok", fetched=result.fetched, imported=result.attachments)
    return result


def plan_sweep(ledger: Ledger, window: Window, sweep_until: dt.datetime, *, rules: str, now: dt.datetime) -> tuple[Window | None, int | None]:
    """What an Airflow backfill run must read: nothing when a fresh scan of the same rules holds its
    window, the gap before such a scan when it holds only the window's end, else its window up to
    now. The backfill's runs start several at a time, in any order: each reads at most what no
    other has, so a month of runs costs a few IMAP sessions, not thousands."""
    reach = ledger.fresh_scan_reaching(window.until, rules=rules, fresh_after=now - SCAN_FRESH_FOR)
    if reach is None:
        return Window(window.since, max(window.until, sweep_until)), None
    scan_id, scan_since, _scan_until = reach
    if scan_since <= window.since:
        return None, scan_id
    return Window(window.since, scan_since), None


def _plan(mailbox: Mailbox, state: FolderState, workspace: Workspace, settings: ConnectionSettings, scan: Window | None,
          cursor: Cursor | None, result: PollResult) -> list[int]:
    """The UIDs this poll considers: a date window's, everything since start_date, or those above the cursor."""
    if scan:
        return mailbox.uids_between(scan.since.date(), (scan.until + dt.timedelta(days=1)).date())
    if cursor is None or cursor.uidvalidity != state.uidvalidity:
        result.mode = "first" if cursor is None else "rescan"
        if cursor is not None:
            log.warning(
                "%s folder '%s': UIDVALIDITY changed from %s to %s (folder recreated or mailbox "
                "migrated): rescanning since %s; messages already imported are recognised as duplicates",
                settings.describe, state.name, cursor.uidvalidity, state.uidvalidity, workspace.start_date,
            )
        return mailbox.uids_between(workspace.start_date, None)
    result.mode = "incremental"
    return [] if state.uidnext - 1 <= cursor.last_uid else mailbox.uids_above(cursor.last_uid)


@contextmanager
def _older_objects_frozen() -> Iterator[None]:
    """Keep the objects that were alive before the drain (in a task process: Airflow's modules and
    the task's state, ~180,000 objects) out of the garbage collector's full passes while the poll
    reads mail, then hand them back. The mail's own objects are collected as usual. A full pass
    over Airflow's heap every few thousand messages cost ~6 % of a first sync (make bench)."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _drain(mailbox: Mailbox, ledger: Ledger, state: FolderState, workspace: Workspace, settings: ConnectionSettings,
           uids: list[int], scan: Window | None, result: PollResult, *, store: Callable[[Attachment], str], poll_id: int,
           probe_store: Callable[[], object] | None) -> None:
    """Fetch and record the UIDs not yet in the ledger, in byte-bounded groups, one transaction each."""
    known: set[int] = set()
    for chunk in _batches(uids, 5000):
        known |= ledger.known_uids(state.uidvalidity, chunk)
    todo = [uid for uid in uids if uid not in known]
    result.candidates = len(todo)
    log.info(
        "%s folder '%s' (%s, UIDVALIDITY %s, UIDNEXT %s): %d new message(s) to read, %d already in the ledger",
        settings.describe, state.name, result.mode, state.uidvalidity, state.uidnext, len(todo), len(known),
    )
    total = (len(todo) + workspace.batch_size - 1) // workspace.batch_size
    limits = limits_of(workspace)
    keep = (lambda meta: scan.contains(meta.internal_date)) if scan else None
    supplier = settings.default_supplier

    def read_here(fetched: FetchedGroup) -> list[tuple[MessageMeta, MessageRecord | None]]:
        return read_group(workspace, supplier, state.uidvalidity, fetched, limits)

    # A large sync reads its mail in a helper process too (a second core), see service/extractor.py.
    helper = (lambda: extractor.HelperProcess(workspace, supplier, state.uidvalidity, limits)) if extractor.wanted(len(todo)) else None
    # closing(): when recording fails, the helper and the reader thread are stopped (and the thread
    # joined) before the error leaves here, so nothing else uses the connection while the caller
    # handles it (or logs out).
    batches = _batches(todo, workspace.batch_size)
    with _older_objects_frozen(), \
            closing(read_ahead(mailbox, batches, max_message_bytes=workspace.max_message_bytes, keep=keep)) as fetched_groups, \
            closing(extractor.read_groups(fetched_groups, read_here, start=helper)) as readings:
        for fetched, read in readings:
            group = fetched.metas
            records = [record for _meta, record in read if record is not None]
            result.fetched += sum(1 for meta, record in read if record is not None and meta.size <= workspace.max_message_bytes)
            # The group is contiguous in UID order, so everything up to its last UID is recorded.
            advance = None if scan else Cursor(state.uidvalidity, group[-1].uid)
            done = _record(ledger, records, store=store, advance_to=advance, poll_id=poll_id, probe_store=probe_store)
            result.recorded += done.recorded
            result.duplicates += done.duplicates
            result.attachments += done.attachments
            for outcome, count in done.outcomes.items():
                result.outcomes[outcome] = result.outcomes.get(outcome, 0) + count
            log.info(
                "batch %d/%d: UIDs %d-%d: %d recorded, %d duplicate(s), %d attachment(s) stored",
                fetched.batch, total, group[0].uid, group[-1].uid, done.recorded, done.duplicates, done.attachments,
            )


def _reevaluate(mailbox: Mailbox, ledger: Ledger, state: FolderState, workspace: Workspace, settings: ConnectionSettings,
                uids: list[int], result: PollResult, *, store: Callable[[Attachment], str], now: dt.datetime) -> None:
    """A backfill also reads again the messages of its window that today's rules or limits may decide
    differently (failed, not_routed, too_large); attachments go through the same unique keys."""
    targets = [t for chunk in _batches(uids, 5000) for t in ledger.rereadable(state.uidvalidity, chunk, REEVALUATED)]
    if not targets:
        return
    done = BatchResult()
    changes, _gone = reread_messages(mailbox, ledger, workspace, settings, state.uidvalidity, targets, store=store, now=now, done=done)
    result.reread = len(changes)
    result.attachments += done.attachments
    log.info("backfill read %d earlier message(s) again under today's rules: %d attachment(s) stored", len(changes), done.attachments)
