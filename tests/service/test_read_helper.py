"""A large sync reads its mail in a helper process (service/extractor.py): the ledger ends up the same
as when the poll reads everything itself, and a helper that cannot start or dies costs nothing."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest

from devstack.samples import demo_mailbox
from imap_intake.service import extractor
from tests.conftest import make_settings, make_workspace
from tests.mime.test_fast_tree import APPLE, FORWARDED, GMAIL, OUTLOOK
from tests.reliability.hostile import cases
from tests.service.helpers import run

pytestmark = pytest.mark.integration
REAL = Path(__file__).parents[1] / "mime" / "real"


def _mailbox(to: str) -> list[tuple[bytes, Any]]:
    hostile = [raw for name, raw in cases(to).items() if raw and name != "enormous header"]  # no empty message: refused by the server
    real = [p.read_bytes() for p in sorted(REAL.glob("*.eml"))]
    mail = [raw for raw, _ in demo_mailbox(to)] + hostile + real + [OUTLOOK, GMAIL, APPLE, FORWARDED]
    return [(raw, None) for raw in [*mail, mail[0]]]  # the last: a re-delivered copy of the first


def _ledger(db: psycopg.Connection, slug: str) -> list[tuple[Any, ...]]:
    """Every message with its outcome, reason and stored attachments, by UID: what a poll decided
    (a duplicate's reason names its first sighting's row id: left out)."""
    return db.execute(
        "SELECT m.uid, m.outcome, regexp_replace(m.reason, 'message [0-9]+ ', 'message # '), m.supplier, m.sender, m.subject, m.fingerprint, "
        "  (SELECT array_agg(a.part_index || ':' || a.filename || ':' || a.sha256 ORDER BY a.part_index) "
        "   FROM imap_intake.attachment a WHERE a.message = m.id), "
        "  (SELECT array_agg(s.original_filename || ':' || s.reason ORDER BY s.id) FROM imap_intake.skipped_part s WHERE s.message = m.id) "
        "FROM imap_intake.message m WHERE m.workspace=%s ORDER BY m.uid", (slug,)).fetchall()


@pytest.fixture()
def helper_for_every_poll(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every poll starts the helper; groups with a message over 20 KB stay in the poll's process.
    Returns the number of groups each started helper read."""
    monkeypatch.setattr(extractor, "HELPER_FROM_MESSAGES", 1)
    monkeypatch.setattr(extractor, "HELPER_MESSAGE_BYTES", 20_000)
    monkeypatch.delenv(extractor.OFF_VARIABLE, raising=False)
    read: list[int] = []
    real_init, real_result = extractor.HelperProcess.__init__, extractor.HelperProcess.result

    def init(self: extractor.HelperProcess, *args: Any) -> None:
        real_init(self, *args)
        read.append(0)

    def result(self: extractor.HelperProcess) -> Any:
        answer = real_result(self)
        read[-1] += 1
        return answer

    monkeypatch.setattr(extractor.HelperProcess, "__init__", init)
    monkeypatch.setattr(extractor.HelperProcess, "result", result)
    return read


def test_the_helper_records_what_the_poll_records_reading_alone(dovecot, mail_user, append, db, unique, tmp_path,  # type: ignore[no-untyped-def]
                                                                helper_for_every_poll, monkeypatch) -> None:
    append(mail_user, _mailbox(mail_user))
    settings = make_settings(dovecot, mail_user)
    helped = make_workspace(unique("helped"), storage_base=f"file://{tmp_path}/a", batch_size=4)
    first = run(helped, settings, db)
    assert len(helper_for_every_poll) == 1 and helper_for_every_poll[0] >= 3  # the helper read groups ...
    monkeypatch.setenv(extractor.OFF_VARIABLE, "off")
    alone = make_workspace(unique("alone"), storage_base=f"file://{tmp_path}/b", batch_size=4)
    second = run(alone, settings, db)
    assert len(helper_for_every_poll) == 1  # ... and none was started with the variable off
    assert first.outcomes == second.outcomes and first.outcomes["duplicate"] == 1 and first.attachments >= 8
    assert _ledger(db, helped.slug) == _ledger(db, alone.slug)
    assert sorted(p.name for p in (tmp_path / "a").rglob("*") if p.is_file()) == \
        sorted(p.name for p in (tmp_path / "b").rglob("*") if p.is_file())


def test_a_helper_that_dies_mid_poll_leaves_the_rest_to_the_poll(dovecot, mail_user, append, db, unique, tmp_path,  # type: ignore[no-untyped-def]
                                                                  helper_for_every_poll, monkeypatch, caplog) -> None:
    append(mail_user, _mailbox(mail_user))
    settings = make_settings(dovecot, mail_user)
    real_result = extractor.HelperProcess.result  # already the counting one
    calls = [0]

    def dies_on_the_third(self: extractor.HelperProcess) -> Any:
        calls[0] += 1
        if calls[0] == 3:
            self._process.kill()
            self._process.wait()
        return real_result(self)

    monkeypatch.setattr(extractor.HelperProcess, "result", dies_on_the_third)
    caplog.set_level(logging.WARNING, logger="imap_intake")
    crashed = make_workspace(unique("crashed"), storage_base=f"file://{tmp_path}/a", batch_size=4)
    run(crashed, settings, db)
    # The third result may still be read from the pipe; the next group then finds the helper gone.
    assert helper_for_every_poll[0] in (2, 3) and "the helper process reading mail failed" in caplog.text
    monkeypatch.setenv(extractor.OFF_VARIABLE, "off")
    alone = make_workspace(unique("alone"), storage_base=f"file://{tmp_path}/b", batch_size=4)
    run(alone, settings, db)
    assert _ledger(db, crashed.slug) == _ledger(db, alone.slug)


def test_a_helper_that_cannot_start_leaves_the_poll_to_read_alone(dovecot, mail_user, append, db, unique, tmp_path,  # type: ignore[no-untyped-def]
                                                                   helper_for_every_poll, monkeypatch, caplog) -> None:
    append(mail_user, [(raw, None) for raw, _ in demo_mailbox(mail_user)])
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    caplog.set_level(logging.WARNING, logger="imap_intake")
    workspace = make_workspace(unique("ws"), storage_base=f"file://{tmp_path}")
    result = run(workspace, make_settings(dovecot, mail_user), db)
    assert result.outcomes == {"imported": 6, "no_supported_attachment": 2}
    assert helper_for_every_poll == [] and "could not start the helper process" in caplog.text


def test_the_helpers_log_lines_and_errors_reach_the_poll(caplog: pytest.LogCaptureFixture) -> None:
    """What the helper logs while it reads is replayed in the poll's (the task's) log; a group it
    cannot read is reported as such (the poll then reads that group itself)."""
    import datetime as dt

    from imap_intake.imap.mailbox import FetchedMessage, MessageMeta
    from imap_intake.mime.extract import Limits
    from imap_intake.service.reading import FetchedGroup

    when = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    good = FetchedMessage(uid=7, internal_date=when, raw=OUTLOOK)
    unreadable = FetchedMessage(uid=8, internal_date=when, raw=None)  # type: ignore[arg-type]
    helper = extractor.HelperProcess(make_workspace("ws"), "Default Supplier", 1, Limits())
    try:
        helper.submit(FetchedGroup(1, [MessageMeta(7, when, len(OUTLOOK))], {7: good}, len(OUTLOOK)))
        [(meta, record)] = helper.result()
        assert meta.uid == 7 and record is not None and record.outcome == "imported"
        assert [a.original_filename for a in record.attachments] == ["PO-4711.pdf"]
        caplog.set_level(logging.WARNING, logger="imap_intake")
        helper.submit(FetchedGroup(2, [MessageMeta(8, when, 10)], {8: unreadable}, 10))
        with pytest.raises(extractor.HelperFailed, match="TypeError"):
            helper.result()
        assert "UID 8: extraction failed" in caplog.text  # logged in the helper, replayed here
    finally:
        helper.close()
    assert helper._process.returncode == 0


def test_a_group_that_cannot_be_sent_ends_the_helper_instead_of_waiting_for_it() -> None:
    import datetime as dt

    from imap_intake.imap.mailbox import MessageMeta
    from imap_intake.mime.extract import Limits
    from imap_intake.service.reading import FetchedGroup

    when = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    helper = extractor.HelperProcess(make_workspace("ws"), None, 1, Limits())
    try:
        helper.submit(FetchedGroup(1, [MessageMeta(7, when, 10)], {7: lambda: None}, 10))  # type: ignore[dict-item]
        outcome: list[BaseException] = []

        def take() -> None:
            try:
                helper.result()
            except BaseException as exc:  # noqa: BLE001 - handed to the assertion below
                outcome.append(exc)

        waiter = threading.Thread(target=take, daemon=True)
        waiter.start()
        waiter.join(30)
        assert not waiter.is_alive(), "the poll would wait forever for a helper that got nothing"
        assert isinstance(outcome[0], extractor.HelperFailed) and "EOFError" in str(outcome[0])
    finally:
        helper._process.kill()  # in case the assertion above failed with the helper still waiting
        helper.close()
