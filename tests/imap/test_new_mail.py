"""Push: the new-mail trigger against the real Dovecot. IDLE announces an APPEND within seconds,
a dropped connection is reopened without losing what arrived meanwhile, no flag ever changes,
and triggers on one mailbox share one stream."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from devstack.dovecot import flags
from devstack.faultproxy import FaultProxy
from devstack.samples import message
from imap_intake.hooks.imap import ImapIntakeHook
from imap_intake.imap.mailbox import Mailbox
from imap_intake.triggers.new_mail import NewMailTrigger

pytestmark = pytest.mark.integration


def _connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, dovecot: Any, user: str, port: int) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({
        "conn_type": "imapintake", "host": "127.0.0.1", "port": port, "login": user, "password": dovecot.password,
        "extra": {"ca_cert": dovecot.tls_files.ca_pem}}))


def _mail(user: str, n: int) -> list[tuple[bytes, None]]:
    return [(message(sender="buyer@acme.example", to=user, subject=f"push {n}").as_bytes(), None)]


async def _next_event(events: Any, deliver: Callable[[], None], *, settle: float = 2.0, timeout: float = 15.0) -> tuple[dict[str, Any], float]:
    """Let the session reach IDLE, deliver mail, and time the event."""
    pending = asyncio.ensure_future(events.__anext__())
    await asyncio.sleep(settle)
    assert not pending.done(), "an event fired before any new mail arrived"
    started = time.monotonic()
    await asyncio.to_thread(deliver)
    event = await asyncio.wait_for(pending, timeout)
    return event.payload, time.monotonic() - started


def test_idle_announces_new_mail_within_seconds_and_changes_no_flag(dovecot, mail_user, append, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _connection(monkeypatch, "imap_push", dovecot, mail_user, dovecot.tls_port)
    append(mail_user, _mail(mail_user, 0))  # mail already there is the poll's business, not an event
    before = flags(dovecot, mail_user)

    async def scenario() -> list[tuple[dict[str, Any], float]]:
        # check_seconds far above the expected latency: only IDLE can deliver the event this fast.
        events = NewMailTrigger(imap_conn_id="imap_push", check_seconds=60).run()
        try:
            first = await _next_event(events, lambda: append(mail_user, _mail(mail_user, 1)))
            second = await _next_event(events, lambda: append(mail_user, _mail(mail_user, 2)), settle=0.5)
        finally:
            await events.aclose()
        return [first, second]

    (first, first_latency), (second, second_latency) = asyncio.run(scenario())
    assert (first["count"], first["last_uid"], second["last_uid"]) == (1, 2, 3)
    assert first["folder"] == "INBOX" and first["uidvalidity"] > 0
    assert first_latency < 5 and second_latency < 5, (first_latency, second_latency)
    after = flags(dovecot, mail_user)
    assert {uid: after[uid] for uid in before} == before and not any(b"\\Seen" in f for f in after.values())


def test_a_dropped_session_reconnects_and_reports_what_arrived_meanwhile(dovecot, mail_user, append, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    proxy = FaultProxy(target_port=dovecot.tls_port)
    _connection(monkeypatch, "imap_push_drop", dovecot, mail_user, proxy.port)

    def drop_then_deliver() -> None:
        proxy.drop_all()
        append(mail_user, _mail(mail_user, 1))

    async def scenario() -> dict[str, Any]:
        events = NewMailTrigger(imap_conn_id="imap_push_drop", check_seconds=60).run()
        try:
            payload, _latency = await _next_event(events, drop_then_deliver, timeout=30)
        finally:
            await events.aclose()
        return payload

    try:
        payload = asyncio.run(scenario())
    finally:
        proxy.close()
    assert payload["count"] == 1 and payload["last_uid"] == 1


def test_triggers_on_one_mailbox_share_one_stream() -> None:
    siblings = [NewMailTrigger(imap_conn_id="imap_catchall", folder="INBOX") for _ in range(50)]
    assert len({t.shared_stream_key() for t in siblings}) == 1
    assert NewMailTrigger(imap_conn_id="imap_catchall", folder="Orders").shared_stream_key() != siblings[0].shared_stream_key()
    classpath, kwargs = siblings[0].serialize()
    assert classpath == "imap_intake.triggers.new_mail.NewMailTrigger" and NewMailTrigger(**kwargs).serialize() == (classpath, kwargs)


@pytest.mark.parametrize("idle", [True, False], ids=["idle", "noop-fallback"])
def test_waiting_for_mail_uses_idle_or_noop_and_sends_only_read_only_commands(dovecot, mail_user, append, monkeypatch, idle) -> None:  # type: ignore[no-untyped-def]
    import imaplib

    from imap_intake.imap.mailbox import READ_ONLY_COMMANDS, Mailbox
    from tests.conftest import make_settings

    sent: list[str] = []
    original = imaplib.IMAP4._command

    def spy(self, name, *args):  # type: ignore[no-untyped-def]
        sent.append(name.upper())
        return original(self, name, *args)

    monkeypatch.setattr(imaplib.IMAP4, "_command", spy)
    with Mailbox.open(make_settings(dovecot, mail_user)) as mailbox:
        mailbox.examine()
        if not idle:  # a server without IDLE: the session falls back to NOOP after the wait
            capabilities = tuple(c for c in mailbox._client.capabilities() if c != b"IDLE")
            monkeypatch.setattr(mailbox._client, "capabilities", lambda: capabilities)
        append(mail_user, _mail(mail_user, 1))  # arrives while (or just before) the session waits
        announced = mailbox.wait_for_mail(1.0)
        found = mailbox.uids_above(0)
    assert announced and found == [1]
    assert ("IDLE" in sent) is idle and ("NOOP" in sent) is not idle
    assert set(sent) <= READ_ONLY_COMMANDS


@pytest.mark.integration
def test_an_idle_session_waits_through_keepalives_and_wakes_on_mail(dovecot, mail_user, append) -> None:  # type: ignore[no-untyped-def]
    """Dovecot says "* OK Still here" every 2 s here: the wait goes on to its end (one IDLE per
    wait, not one per keepalive); mail ends it at once."""
    from imap_intake.imap.mailbox import Mailbox
    from tests.conftest import make_settings

    with Mailbox.open(make_settings(dovecot, mail_user)) as mailbox:
        mailbox.examine()
        started = time.monotonic()
        assert mailbox.wait_for_mail(5.0) is False
        assert time.monotonic() - started >= 4.5  # two keepalives came and went
        timer = threading.Timer(1.0, lambda: append(mail_user, _mail(mail_user, 1)))
        timer.start()
        started = time.monotonic()
        assert mailbox.wait_for_mail(30.0) is True
        assert time.monotonic() - started < 15
        timer.join()



def test_a_watch_that_starts_reports_the_mail_its_polls_have_not_reached(dovecot, postgres, db, mail_user, append, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A deploy or a triggerer restart ends every watch: mail that arrives before the next one starts
    must not wait for the cron safety net (six hours in the recommended setting)."""
    _connection(monkeypatch, "imap_push_start", dovecot, mail_user, dovecot.tls_port)
    monkeypatch.setenv("AIRFLOW_CONN_IMAP_PUSH_LEDGER", json.dumps({
        "conn_type": "postgres", "host": "127.0.0.1", "port": postgres.port, "login": postgres.user,
        "password": postgres.password, "schema": postgres.database}))
    append(mail_user, _mail(mail_user, 1) + _mail(mail_user, 2) + _mail(mail_user, 3))
    settings = ImapIntakeHook("imap_push_start").get_settings()
    with Mailbox.open(settings) as mailbox:
        uidvalidity, account = mailbox.examine("INBOX").uidvalidity, settings.account
    for workspace, last_uid in (("polled_to_3", 3), ("polled_to_1", 1)):  # two workspaces on this mailbox
        db.execute("INSERT INTO imap_intake.cursor (workspace, account, folder, uidvalidity, last_uid) VALUES (%s, %s, 'INBOX', %s, %s)",
                   (f"{workspace}_{mail_user}", account, uidvalidity, last_uid))

    async def first_event(trigger: NewMailTrigger, timeout: float) -> dict[str, Any] | None:
        events = trigger.run()
        try:
            return (await asyncio.wait_for(events.__anext__(), timeout)).payload
        except TimeoutError:
            return None
        finally:
            await events.aclose()

    started = asyncio.run(first_event(NewMailTrigger(imap_conn_id="imap_push_start", postgres_conn_id="imap_push_ledger"), 15))
    assert started is not None, "the watch started without reporting mail a workspace's poll had not reached"
    assert (started["first_uid"], started["last_uid"], started["count"]) == (2, 3, 2)
    assert started["reason"] == "mail that arrived while no watch ran"
    db.execute("UPDATE imap_intake.cursor SET last_uid = 3 WHERE account = %s", (account,))
    assert asyncio.run(first_event(NewMailTrigger(imap_conn_id="imap_push_start", postgres_conn_id="imap_push_ledger"), 4)) is None
