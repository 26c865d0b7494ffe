"""Read messages again after a fix or a new supplier rule: failed, not_routed, too_large ones.

The same extraction and classification as a poll, under the same (account, folder) lock; the
new reading replaces the message's outcome, and its attachments go through the same
``ON CONFLICT`` keys, so a re-read never stores or imports an attachment twice. Imported
messages and duplicates are never re-read. Only messages of the folder's current UIDVALIDITY
can be fetched by UID; older ones are reported, not guessed at.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass, field

import psycopg

from imap_intake.config import Workspace
from imap_intake.imap.mailbox import Mailbox
from imap_intake.imap.settings import ConnectionSettings
from imap_intake.mime.extract import Attachment
from imap_intake.service.reading import MailboxOpener, limits_of, read_ahead, read_group
from imap_intake.store.ledger import BatchResult, Ledger

log = logging.getLogger(__name__)
DEFAULT_OUTCOMES = ("failed", "not_routed")


@dataclass
class RereadResult:
    workspace: str
    folder: str
    uidvalidity: int = 0
    reread: int = 0
    attachments: int = 0
    gone: list[int] = field(default_factory=list)
    changes: list[dict[str, object]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def reread_messages(
    mailbox: Mailbox,
    ledger: Ledger,
    workspace: Workspace,
    settings: ConnectionSettings,
    uidvalidity: int,
    targets: Sequence[tuple[int, int, str]],
    *,
    store: Callable[[Attachment], str],
    now: dt.datetime,
    done: BatchResult,
) -> tuple[list[dict[str, object]], list[int]]:
    """Read ``targets`` ((id, uid, outcome) rows) again on an open, examined folder: (changes, gone UIDs)."""
    by_uid = {uid: (message, was) for message, uid, was in targets}
    listed: set[int] = set()
    vanished: list[int] = []  # listed, then expunged before their bodies were fetched
    changes: list[dict[str, object]] = []
    limits = limits_of(workspace)
    # The same read path as the poll's (one batch: the targets), closed before an error leaves here.
    with closing(read_ahead(mailbox, [sorted(by_uid)], max_message_bytes=workspace.max_message_bytes)) as fetched_groups:
        for fetched in fetched_groups:
            for meta, record in read_group(workspace, settings.default_supplier, uidvalidity, fetched, limits):
                listed.add(meta.uid)
                if record is None:
                    vanished.append(meta.uid)
                    continue
                message, was = by_uid[meta.uid]
                before = done.attachments
                outcome = ledger.rerecord(message, record, store=store, now=now, result=done)
                changes.append({"uid": meta.uid, "was": was, "now": outcome, "reason": record.reason[:300],
                                "attachments": done.attachments - before})
                log.info("UID %s: %s -> %s (%s)", meta.uid, was, outcome, record.reason[:200])
    return changes, sorted(set(by_uid) - listed) + vanished


def reread(
    workspace: Workspace,
    settings: ConnectionSettings,
    *,
    connection: psycopg.Connection,
    store: Callable[[Attachment], str],
    now: dt.datetime,
    uids: Sequence[int] | None = None,
    outcomes: Sequence[str] = DEFAULT_OUTCOMES,
    open_mailbox: MailboxOpener = Mailbox.open,
) -> RereadResult:
    folder = workspace.folder or settings.folder
    ledger = Ledger(connection, workspace=workspace.slug, account=settings.account, folder=folder)
    result = RereadResult(workspace=workspace.slug, folder=folder)
    with ledger.exclusive():
        poll_id = ledger.start_poll("reread")
        done = BatchResult()
        try:
            with open_mailbox(settings) as mailbox:
                state = mailbox.examine(folder)
                result.uidvalidity = state.uidvalidity
                targets = ledger.reread_targets(state.uidvalidity, uids=uids, outcomes=outcomes)
                log.info("%s folder '%s': %d message(s) to read again", settings.describe, folder, len(targets))
                result.changes, result.gone = reread_messages(
                    mailbox, ledger, workspace, settings, state.uidvalidity, targets, store=store, now=now, done=done,
                )
            result.reread = len(result.changes)
            result.attachments = done.attachments
        except BaseException as exc:
            if not connection.closed and not connection.broken:
                ledger.finish_poll(poll_id, status="failed", fetched=len(result.changes), imported=done.attachments, error=str(exc))
            raise
        ledger.finish_poll(poll_id, status="ok", fetched=result.reread, imported=done.attachments)
    if result.gone:
        log.warning("UID(s) %s are no longer in folder '%s' (expunged or moved): not re-read", result.gone, folder)
    return result
