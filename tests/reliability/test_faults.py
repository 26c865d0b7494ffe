"""Faults between the poller and its servers: after retries every attachment is present exactly once,
the cursor is consistent and no flag changed on the server."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from devstack.dovecot import flags
from devstack.faultproxy import FaultProxy
from devstack.samples import PO_CSV_EN, message
from imap_intake.exceptions import MailboxError, MailboxUnreachable
from imap_intake.store import db as store_db
from tests.conftest import ROOT, make_settings, make_workspace
from tests.reliability.report import record
from tests.service.helpers import attachment_rows, outcomes, run

pytestmark = pytest.mark.integration
KILL_TRIALS = 20
PER_TRIAL = 9  # new messages per trial: three commits of batch_size 3, so a kill can land between them


def big_mailbox(user: str, count: int) -> list[tuple[bytes, None]]:
    return [(message(sender="a@x.example", to=user, subject=f"po {n}",
                     attachments=[(f"po-{n}.csv", "text/csv", PO_CSV_EN + f"PO-{n},2026-11-04,Z-{n},x,1,1.00,1.00,USD\n".encode() + b"#" * 20_000)]
                     ).as_bytes(), None) for n in range(count)]


def assert_exactly_once(db, workspace, expected_attachments: int, expected_messages: int) -> None:  # type: ignore[no-untyped-def]
    rows = attachment_rows(db, workspace.slug)
    assert len(rows) == expected_attachments and len(set(rows)) == expected_attachments
    assert sum(outcomes(db, workspace.slug).values()) == expected_messages
    cursor = db.execute("SELECT last_uid FROM imap_intake.cursor WHERE workspace=%s", (workspace.slug,)).fetchone()
    max_uid = db.execute("SELECT max(uid) FROM imap_intake.message WHERE workspace=%s", (workspace.slug,)).fetchone()
    assert cursor is not None and cursor[0] >= max_uid[0]


@pytest.mark.parametrize(("mode", "after", "error"), [
    ("reset", 150_000, MailboxUnreachable),   # connection reset in the middle of a FETCH
    ("bye", 150_000, MailboxError),           # an unexpected BYE
    ("stall", 150_000, MailboxUnreachable),   # the server stalls: the timeout fires
])
def test_connection_faults_fail_cleanly_and_the_retry_completes(mode, after, error, dovecot, mail_user, append, db, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    append(mail_user, big_mailbox(mail_user, 12))
    before = flags(dovecot, mail_user)
    workspace = make_workspace(unique("ws"), storage_base=f"file://{tmp_path}", batch_size=4)
    proxy = FaultProxy(target_port=dovecot.tls_port, mode=mode, after=after)
    started = time.monotonic()
    try:
        with pytest.raises(error):
            run(workspace, make_settings(dovecot, mail_user, port=proxy.port, timeout=2.0), db)
    finally:
        proxy.close()
    failed_after = time.monotonic() - started
    partial = len(attachment_rows(db, workspace.slug))
    run(workspace, make_settings(dovecot, mail_user), db)  # the retry, straight to the server
    assert_exactly_once(db, workspace, 12, 12)
    assert flags(dovecot, mail_user) == before
    status = db.execute("SELECT status FROM imap_intake.poll WHERE workspace=%s ORDER BY id", (workspace.slug,)).fetchall()
    assert [s[0] for s in status] == ["failed", "ok"]
    record(f"connection {mode}", trials=1, committed_before_fault=partial, seconds_to_fail=round(failed_after, 1),
           after_retry="12 of 12 attachments once, flags unchanged")


def test_postgres_restarted_mid_poll(dovecot, postgres, mail_user, append, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from imap_intake.service.poll import poll
    from imap_intake.store.storage import AttachmentStore
    from tests.service.helpers import NOW

    append(mail_user, big_mailbox(mail_user, 9))
    workspace = make_workspace(unique("ws"), storage_base=f"file://{tmp_path}", batch_size=3)
    store = AttachmentStore(workspace.storage_base)
    calls = 0

    def store_then_restart(attachment):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 5:  # in the second batch, inside its transaction
            postgres.restart()
        return store.put(attachment.data, attachment.sha256)

    connection = store_db.connect_dsn(postgres.dsn)
    store_db.migrate(connection)
    with pytest.raises(Exception) as info:
        poll(workspace, make_settings(dovecot, mail_user), connection=connection, store=store_then_restart, now=NOW)
    assert "terminat" in str(info.value).lower() or "closed" in str(info.value).lower() or "connection" in str(info.value).lower()
    with store_db.connect_dsn(postgres.dsn) as fresh:
        partial = len(attachment_rows(fresh, workspace.slug))
        run(workspace, make_settings(dovecot, mail_user), fresh)
        assert_exactly_once(fresh, workspace, 9, 9)
    record("postgres restart mid-poll", trials=1, committed_before_fault=partial, after_retry="9 of 9 attachments once")


SUBPROCESS_POLL = """
import sys
sys.path.insert(0, {root!r})
from pathlib import Path
from devstack.dovecot import DovecotServer
from devstack.tls import TlsFiles
from imap_intake.store import db as store_db
from tests.conftest import make_settings, make_workspace
from tests.service.helpers import run
server = DovecotServer(root=Path({root_dir!r}), port={port}, tls_port={tls_port}, password={password!r})
server.tls_files = TlsFiles(Path({ca!r}), Path({ca!r}), Path({ca!r}))
from imap_intake.store.storage import AttachmentStore  # the slow imports happen before "ready"
AttachmentStore({storage!r})
connection = store_db.connect_dsn({dsn!r})
store_db.migrate(connection)
import imap_intake.store.ledger as ledger
record_batch = ledger.Ledger.record_batch
def announce(self, records, **kwargs):
    result = record_batch(self, records, **kwargs)
    if records:
        print("committed", flush=True)
    return result
ledger.Ledger.record_batch = announce
print("ready", flush=True)
run(make_workspace({slug!r}, storage_base={storage!r}, batch_size=3), make_settings(server, {user!r}), connection)
print("done", flush=True)
"""


def test_sigkill_at_random_points(dovecot, postgres, mail_user, append, db, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Each trial adds mail (and now and then a re-delivered copy), starts a poll in a process of its
    own and kills it with SIGKILL after a random delay: from the start on even trials, from the first
    committed batch on odd ones. Then one poll runs to the end."""
    rng = random.Random(20261121)
    slug = unique("ws")
    storage = f"file://{tmp_path}"
    assert dovecot.tls_files is not None
    env = dict(os.environ, PYTHONPATH=str(ROOT))

    def start(poll_slug: str, user: str) -> subprocess.Popen[str]:
        script = SUBPROCESS_POLL.format(
            root=str(ROOT), root_dir=str(dovecot.root), port=dovecot.port, tls_port=dovecot.tls_port, password=dovecot.password,
            ca=str(dovecot.tls_files.ca_cert), dsn=postgres.dsn, slug=poll_slug, storage=storage, user=user)
        process = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        return process

    # Calibrate on a mailbox of its own: how long one trial's poll takes on this machine, so that
    # the random kill delays land inside the poll however fast or slow the machine is.
    calibration_user = f"cal-{mail_user}"
    append(calibration_user, big_mailbox(calibration_user, PER_TRIAL))
    process = start(unique("cal"), calibration_user)
    began = time.monotonic()
    assert process.stdout is not None
    assert [line.strip() for line in process.stdout][-1] == "done"
    poll_seconds = time.monotonic() - began
    process.wait(30)
    killed = finished = copies = progressed = 0
    previous: list[tuple[bytes, None]] = []
    for trial in range(KILL_TRIALS):
        fresh = [(raw.replace(b"PO-", f"T{trial}-PO-".encode()), d) for raw, d in big_mailbox(mail_user, PER_TRIAL)]
        redelivered = previous[:1] if trial % 4 == 3 else []
        copies += len(redelivered)
        append(mail_user, fresh + redelivered)
        previous = fresh
        before_trial = len(attachment_rows(db, slug))
        process = start(slug, mail_user)
        if trial % 2:  # odd trials: a random point after the first committed batch
            assert process.stdout is not None
            process.stdout.readline()
            time.sleep(rng.uniform(0.0, poll_seconds / 3))
        else:  # even trials: a random point anywhere in the poll, connecting included
            time.sleep(rng.uniform(0.0, poll_seconds))
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        progressed += len(attachment_rows(db, slug)) > before_trial
        killed += process.returncode == -signal.SIGKILL
        finished += process.returncode == 0
    before = flags(dovecot, mail_user)
    run(make_workspace(slug, storage_base=storage, batch_size=3), make_settings(dovecot, mail_user), db)
    rows = attachment_rows(db, slug)
    assert len(rows) == len(set(rows)) == KILL_TRIALS * PER_TRIAL
    assert outcomes(db, slug) == {"imported": KILL_TRIALS * PER_TRIAL, "duplicate": copies}
    assert flags(dovecot, mail_user) == before
    assert killed >= KILL_TRIALS // 2, f"only {killed} of {KILL_TRIALS} polls were killed mid-run"
    leftovers = len(list(tmp_path.rglob("*.tmp")))
    assert progressed >= 3, "the kills never landed after a committed batch: the delays are too short"
    record("SIGKILL at random points", trials=KILL_TRIALS, killed_mid_poll=killed, finished_before_kill=finished,
           trials_that_committed_a_batch_before_the_kill=progressed, calibrated_poll_seconds=round(poll_seconds, 2),
           messages=KILL_TRIALS * PER_TRIAL + copies, attachments_stored_once=len(rows), redelivered_copies_recognised=copies,
           partial_temp_files_left=leftovers)
