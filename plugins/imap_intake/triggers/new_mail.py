"""New mail, within seconds: an event trigger that holds IMAP IDLE on a folder opened read-only.

``NewMailTrigger`` is what a push workspace's mailbox asset watches (``AssetWatcher``): the
triggerer runs it and every event starts the workspace's DAG, whose poll is the same
exactly-once poll as the cron run's. Triggers on the same connection and folder share one
stream (``shared_stream_key``), so fifty workspaces on one catch-all mailbox hold one IDLE session.

The session is blocking imapclient code, so it runs in a thread of its own (one per connection
and folder) that hands events to the triggerer's event loop; the loop itself never blocks. The
thread goes through the same mailbox seam as a poll (TLS rules, OAuth2, EXAMINE, no flag ever
changed), ends each IDLE with DONE every ``check_seconds`` (five minutes, far inside the 29 minutes
servers allow; keepalives between cost nothing), falls back to NOOP where the server has no IDLE,
signs in again before an OAuth2 token runs out, and reconnects with backoff after a drop, remembering the last UID it saw.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable, Hashable
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from imap_intake.exceptions import ImapIntakeError

log = logging.getLogger(__name__)
#: How often an idle session re-issues IDLE (DONE, a UID SEARCH, IDLE again): the bound on how long a
#: silently dropped connection goes unnoticed (the cron safety net polls meanwhile), far inside the 29
#: minutes RFC 2177 allows. Servers' keepalives between do not cost a round trip (``wait_for_mail``).
CHECK_SECONDS = 300.0
MAX_BACKOFF_SECONDS = 300.0


def _missed(mailbox: Any, postgres_conn_id: str, account: str, folder: str, state: Any) -> tuple[list[int], str] | None:
    """UIDs the polls of this folder have not reached, by the ledger's cursors, when a watch starts
    (a deploy, a triggerer restart, a push workspace switched on): without this, mail that came while
    no watch ran would wait for the cron safety net. No cursor yet (the first poll is the cron run's
    or a manual one) or an unreadable ledger: nothing is reported here."""
    from imap_intake.service.run import ledger_connection

    try:
        with ledger_connection(postgres_conn_id) as connection:
            rows = connection.execute("SELECT uidvalidity, last_uid FROM imap_intake.cursor WHERE account=%s AND folder=%s",
                                      (account, folder)).fetchall()
    except Exception as exc:  # noqa: BLE001 - the watch goes on; the cron run polls anyway
        log.warning("new-mail watch on '%s': the ledger's cursors are unreadable (%s): mail from before the watch waits for "
                    "the next scheduled run", folder, exc)
        return None
    if not rows:
        return None
    if any(int(uidvalidity) != state.uidvalidity for uidvalidity, _ in rows):
        return [], "UIDVALIDITY changed while no watch ran"  # the folder was recreated: the poll sorts it out
    lowest = min(int(last_uid) for _, last_uid in rows)
    missed = list(mailbox.uids_above(lowest)) if lowest < state.uidnext - 1 else []
    return (missed, "mail that arrived while no watch ran") if missed else None


def _watch(imap_conn_id: str, folder: str, check_seconds: float, stop: threading.Event,
           emit: Callable[[dict[str, Any]], None], current: list[Any], postgres_conn_id: str = "") -> None:
    """The blocking session loop (its own thread): emit one event per arrival of new UIDs.
    ``current`` holds the open mailbox, so that stopping can interrupt a wait in progress."""
    from imap_intake.hooks.imap import ImapIntakeHook
    from imap_intake.imap.mailbox import Mailbox

    seen: tuple[int, int] | None = None  # (UIDVALIDITY, last UID seen), kept across reconnects
    backoff = 1.0
    while not stop.is_set():
        try:
            settings = ImapIntakeHook(imap_conn_id).get_settings()
            with Mailbox.open(settings) as mailbox:
                current[:] = [mailbox]
                if stop.is_set():
                    return
                state = mailbox.examine(folder or None)
                if seen is None or seen[0] != state.uidvalidity:
                    if seen is not None:  # the folder was recreated: let the poll sort it out
                        emit(_event(imap_conn_id, state.name, state.uidvalidity, [], reason="UIDVALIDITY changed"))
                    elif postgres_conn_id:  # the watch starts: report what arrived while none ran
                        missed = _missed(mailbox, postgres_conn_id, settings.account, folder or settings.folder, state)
                        if missed is not None:
                            emit(_event(imap_conn_id, state.name, state.uidvalidity, missed[0], reason=missed[1]))
                    seen = (state.uidvalidity, state.uidnext - 1)
                log.info("%s: watching folder '%s' for new mail (IDLE)", settings.describe, state.name)
                backoff = 1.0
                while not stop.is_set():
                    new = mailbox.uids_above(seen[1])  # also what arrived while reconnecting
                    if new:
                        seen = (seen[0], max(new))
                        emit(_event(imap_conn_id, state.name, state.uidvalidity, new))
                    mailbox.wait_for_mail(check_seconds)
                    mailbox.renew_if_expiring()
        except ImapIntakeError as exc:
            if stop.is_set():
                return  # interrupted on purpose
            log.warning("new-mail watch on connection '%s': %s; reconnecting in %.0f s", imap_conn_id, exc, backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        except Exception:  # noqa: BLE001 - a watch must outlive surprises; the cron schedule still polls
            if stop.is_set():
                return
            log.exception("new-mail watch on connection '%s' failed; reconnecting in %.0f s", imap_conn_id, backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)


def _event(imap_conn_id: str, folder: str, uidvalidity: int, uids: list[int], *, reason: str = "new mail") -> dict[str, Any]:
    return {"imap_conn_id": imap_conn_id, "folder": folder, "uidvalidity": uidvalidity, "reason": reason,
            "count": len(uids), "first_uid": min(uids) if uids else None, "last_uid": max(uids) if uids else None}


async def watch_new_mail(imap_conn_id: str, folder: str = "", *, check_seconds: float = CHECK_SECONDS,
                         postgres_conn_id: str = "") -> AsyncIterator[dict[str, Any]]:
    """Yield an event each time new mail arrives, forever (until the consumer stops iterating); with
    ``postgres_conn_id`` (the ledger), also once at the start for mail the polls have not reached."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    stop = threading.Event()
    current: list[Any] = []
    thread = threading.Thread(
        target=_watch, args=(imap_conn_id, folder, check_seconds, stop, lambda item: loop.call_soon_threadsafe(queue.put_nowait, item),
                             current, postgres_conn_id),
        name=f"imap-intake-idle-{imap_conn_id}", daemon=True,
    )
    thread.start()
    try:
        while True:
            yield await queue.get()
    finally:
        stop.set()
        for mailbox in list(current):
            mailbox.interrupt()  # end the IDLE in progress: the thread leaves at once, the session closes
        await asyncio.to_thread(thread.join, 10)


class NewMailTrigger(BaseEventTrigger):
    """Fires when new mail arrives in ``folder`` (empty: the connection's folder) of ``imap_conn_id``."""

    def __init__(self, *, imap_conn_id: str, folder: str = "", check_seconds: float = CHECK_SECONDS, postgres_conn_id: str = "") -> None:
        super().__init__()
        self.imap_conn_id = imap_conn_id
        self.folder = folder
        self.check_seconds = check_seconds
        self.postgres_conn_id = postgres_conn_id  # the ledger: mail the polls have not reached is reported at the start

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{__name__}.NewMailTrigger",
                {"imap_conn_id": self.imap_conn_id, "folder": self.folder, "check_seconds": self.check_seconds,
                 "postgres_conn_id": self.postgres_conn_id})

    def shared_stream_key(self) -> Hashable | None:
        return ("imap-intake", "new-mail", self.imap_conn_id, self.folder)

    @classmethod
    async def open_shared_stream(cls, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        async for item in watch_new_mail(kwargs["imap_conn_id"], kwargs.get("folder") or "",
                                         check_seconds=float(kwargs.get("check_seconds") or CHECK_SECONDS),
                                         postgres_conn_id=kwargs.get("postgres_conn_id") or ""):
            yield item

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        async for item in shared_stream:
            yield TriggerEvent(item)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        async for item in watch_new_mail(self.imap_conn_id, self.folder, check_seconds=self.check_seconds,
                                         postgres_conn_id=self.postgres_conn_id):
            yield TriggerEvent(item)
