"""Exactly-once intake against real Dovecot and Postgres."""

from __future__ import annotations

import datetime as dt
import os
import signal
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from imapclient import IMAPClient

from devstack.dovecot import flags
from devstack.samples import PO_CSV_EN, demo_mailbox, message, po_pdf
from imap_intake.service.poll import Window
from imap_intake.store import db as store_db
from tests.conftest import ROOT, make_settings, make_workspace
from tests.service.helpers import attachment_rows, outcomes, run

pytestmark = pytest.mark.integration


def test_demo_mailbox_is_imported_once_and_flags_never_change(dovecot, mail_user, append, db, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    append(mail_user, demo_mailbox(mail_user))
    workspace = make_workspace(unique("ws"), storage_base=f"file://{tmp_path}")
    settings = make_settings(dovecot, mail_user)
    before = flags(dovecot, mail_user)
    first = run(workspace, settings, db)
    assert first.mode == "first" and first.fetched == 8
    assert outcomes(db, workspace.slug) == {"imported": 6, "no_supported_attachment": 2}
    assert len(attachment_rows(db, workspace.slug)) == 6
    assert flags(dovecot, mail_user) == before  # \Seen included: nothing changed
    moved = db.execute("SELECT updated_at FROM imap_intake.cursor WHERE workspace=%s", (workspace.slug,)).fetchone()[0]
    second = run(workspace, settings, db)
    assert second.mode == "incremental" and second.candidates == 0 and second.fetched == 0
    # The status page's "Moved" is when the last UID moved: a poll that found nothing leaves it.
    assert db.execute("SELECT updated_at FROM imap_intake.cursor WHERE workspace=%s", (workspace.slug,)).fetchone()[0] == moved
    assert len(attachment_rows(db, workspace.slug)) == 6
    skipped = db.execute(
        "SELECT s.reason FROM imap_intake.skipped_part s JOIN imap_intake.message m ON m.id=s.message WHERE m.workspace=%s",
        (workspace.slug,),
    ).fetchall()
    assert any("unsupported type: docx" in r[0] for r in skipped)
    # Each poll row spans the time the poll held its session (the status page and make scale read it).
    spans = db.execute("SELECT started_at, finished_at FROM imap_intake.poll WHERE workspace=%s ORDER BY id", (workspace.slug,)).fetchall()
    assert len(spans) == 2 and all(end > start for start, end in spans) and spans[1][0] >= spans[0][1]


def test_new_mail_after_a_poll_is_picked_up_incrementally(dovecot, mail_user, append, db, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    workspace = make_workspace(unique("ws"), storage_base=f"file://{tmp_path}")
    settings = make_settings(dovecot, mail_user)
    append(mail_user, [(message(sender="a@x.example", to=mail_user, subject="1", attachments=[("a.csv", "text/csv", PO_CSV_EN)]).as_bytes(), None)])
    run(workspace, settings, db)
    append(mail_user, [(message(sender="a@x.example", to=mail_user, subject="2", attachments=[("b.pdf", "application/pdf", po_pdf("77"))]).as_bytes(), None)])
    result = run(workspace, settings, db)
    assert result.mode == "incremental" and result.fetched == 1 and result.attachments == 1


def test_a_to_header_of_5000_address_groups_is_imported_through_a_real_poll(dovecot, mail_user, append, db, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A real message's To of thousands of unclosed address groups made the standard library recurse; the
    message must still be imported with its attachment, its recipients read, and the sender recorded."""
    workspace = make_workspace(unique("ws"), storage_base=f"file://{tmp_path}", recipients=(mail_user,))
    settings = make_settings(dovecot, mail_user)
    groups = ", ".join(f"list{i}: member{i}@corp.example" for i in range(5000))
    msg = message(sender="Buyer <buyer@acme.example>", to=mail_user, subject="PO", attachments=[("a.csv", "text/csv", PO_CSV_EN)])
    raw = msg.as_bytes().replace(b"Subject:", b"Cc: " + groups.encode() + b"\r\nSubject:", 1)
    append(mail_user, [(raw, None)])
    result = run(workspace, settings, db)
    assert result.attachments == 1 and outcomes(db, workspace.slug) == {"imported": 1}
    assert db.execute("SELECT sender FROM imap_intake.message WHERE workspace=%s", (workspace.slug,)).fetchone() == ("buyer@acme.example",)


def test_uidvalidity_change_imports_nothing_new(dovecot, mail_user, append, db, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    mail = demo_mailbox(mail_user)
    append(mail_user, mail, folder="Orders")
    workspace = make_workspace(unique("ws"), folder="Orders", storage_base=f"file://{tmp_path}")
    settings = make_settings(dovecot, mail_user)
    run(workspace, settings, db)
    assert dovecot.tls_files is not None
    context = ssl.create_default_context(cafile=str(dovecot.tls_files.ca_cert))
    with IMAPClient("127.0.0.1", dovecot.tls_port, ssl=True, ssl_context=context) as admin:  # the mail admin, not us
        admin.login(mail_user, dovecot.password)
        old = admin.folder_status("Orders", [b"UIDVALIDITY"])[b"UIDVALIDITY"]
        admin.delete_folder("Orders")
    append(mail_user, mail, folder="Orders")
    result = run(workspace, settings, db)
    assert result.mode == "rescan" and result.uidvalidity != old
    assert result.attachments == 0 and result.duplicates == 8
    assert len(attachment_rows(db, workspace.slug)) == 6
    assert outcomes(db, workspace.slug)["duplicate"] == 8


def test_messages_without_message_id_are_told_apart(dovecot, mail_user, append, db, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    raws = []
    for n in range(2):
        msg = message(sender="a@x.example", to=mail_user, subject=f"no id {n}", attachments=[(f"{n}.csv", "text/csv", PO_CSV_EN + str(n).encode())])
        del msg["Message-ID"]
        raws.append((msg.as_bytes(), None))
    append(mail_user, raws + [raws[0]])  # the third is a re-delivered copy of the first
    workspace = make_workspace(unique("ws"), storage_base=f"file://{tmp_path}")
    run(workspace, make_settings(dovecot, mail_user), db)
    assert outcomes(db, workspace.slug) == {"imported": 2, "duplicate": 1}
    # One batch, one INSERT: the rows meet the unique keys in UID order, so the lowest UID is the first sighting.
    rows = db.execute("SELECT m.uid, m.outcome, f.uid FROM imap_intake.message m LEFT JOIN imap_intake.message f "
                      "ON f.id = m.duplicate_of WHERE m.workspace=%s ORDER BY m.uid", (workspace.slug,)).fetchall()
    assert [(outcome, first) for _, outcome, first in rows] == [("imported", None), ("imported", None), ("duplicate", rows[0][0])]


def test_overlapping_polls_import_each_attachment_once(dovecot, mail_user, append, postgres, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    append(mail_user, demo_mailbox(mail_user) * 3)  # 24 messages, 8 distinct
    workspace = make_workspace(unique("ws"), storage_base=f"file://{tmp_path}", batch_size=2)
    settings = make_settings(dovecot, mail_user)
    errors: list[BaseException] = []

    def one() -> None:
        connection = store_db.connect_dsn(postgres.dsn)
        try:
            store_db.migrate(connection)
            run(workspace, settings, connection)
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=one) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    with store_db.connect_dsn(postgres.dsn) as connection:
        rows = attachment_rows(connection, workspace.slug)
        assert len(rows) == 6 and len(set(rows)) == 6
        assert outcomes(connection, workspace.slug) == {"imported": 6, "no_supported_attachment": 2, "duplicate": 16}


KILLER = """
import os, signal, sys
sys.path.insert(0, {root!r})
from tests.service.helpers import run
from tests.conftest import make_settings, make_workspace
from devstack.dovecot import DovecotServer, flags
from imap_intake.store import db as store_db
import imap_intake.store.ledger as ledger
stored = 0
original = ledger.Ledger._attachment_rows  # once per message recorded, its files staged
def record_then_die(self, message, record, store):
    global stored
    rows = original(self, message, record, store)
    stored += 1
    if stored == {kill_after}:
        os.kill(os.getpid(), signal.SIGKILL)  # mid-transaction, mid-batch
    return rows
ledger.Ledger._attachment_rows = record_then_die
server = DovecotServer(root=__import__('pathlib').Path({root_dir!r}), port={port}, tls_port={tls_port}, password={password!r})
from devstack.tls import TlsFiles
from pathlib import Path
server.tls_files = TlsFiles(Path({ca!r}), Path({ca!r}), Path({ca!r}))
connection = store_db.connect_dsn({dsn!r})
run(make_workspace({slug!r}, storage_base={storage!r}, batch_size=3), make_settings(server, {user!r}), connection)
"""


@pytest.mark.parametrize("kill_after", [2, 4, 7])
def test_poll_killed_mid_batch_then_rerun_stores_each_attachment_once(dovecot, mail_user, append, db, postgres, unique, tmp_path, kill_after) -> None:  # type: ignore[no-untyped-def]
    append(mail_user, demo_mailbox(mail_user))
    slug = unique("ws")
    storage = f"file://{tmp_path}"
    assert dovecot.tls_files is not None
    script = KILLER.format(
        root=str(ROOT), kill_after=kill_after, root_dir=str(dovecot.root), port=dovecot.port, tls_port=dovecot.tls_port,
        password=dovecot.password, ca=str(dovecot.tls_files.ca_cert), dsn=postgres.dsn, slug=slug, storage=storage, user=mail_user,
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    killed = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    partial = len(attachment_rows(db, slug))
    assert partial < 6
    run(make_workspace(slug, storage_base=storage, batch_size=3), make_settings(dovecot, mail_user), db)
    rows = attachment_rows(db, slug)
    assert len(rows) == 6 and len(set(rows)) == 6
    assert sum(outcomes(db, slug).values()) == 8
    for path in Path(tmp_path).rglob("*.tmp"):
        pytest.fail(f"temporary file left behind: {path}")


def test_backfill_imports_only_the_missing_window_and_keeps_the_cursor(dovecot, mail_user, append, db, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    def dated(day: int, subject: str) -> tuple[bytes, dt.datetime]:
        raw = message(sender="a@x.example", to=mail_user, subject=subject,
                      attachments=[(f"{subject}.csv", "text/csv", PO_CSV_EN + subject.encode())]).as_bytes()
        return raw, dt.datetime(2026, 10, day, 12, 0, tzinfo=dt.UTC)

    append(mail_user, [dated(1, "oct01"), dated(10, "oct10"), dated(12, "oct12"), dated(20, "oct20")])
    workspace = make_workspace(unique("ws"), start_date=dt.date(2026, 10, 15), storage_base=f"file://{tmp_path}")
    settings = make_settings(dovecot, mail_user)
    first = run(workspace, settings, db)
    assert first.attachments == 1  # only oct20 is after start_date
    cursor_before = db.execute("SELECT uidvalidity, last_uid FROM imap_intake.cursor WHERE workspace=%s", (workspace.slug,)).fetchone()
    window = Window(dt.datetime(2026, 10, 5, tzinfo=dt.UTC), dt.datetime(2026, 10, 12, 6, tzinfo=dt.UTC))
    backfill = run(workspace, settings, db, window=window)
    assert backfill.mode == "backfill" and backfill.attachments == 1  # oct10 only: oct12 12:00 is past until
    subjects = {r[0] for r in db.execute("SELECT subject FROM imap_intake.message WHERE workspace=%s", (workspace.slug,))}
    assert subjects == {"oct20", "oct10"}
    again = run(workspace, settings, db, window=Window(dt.datetime(2026, 9, 1, tzinfo=dt.UTC), dt.datetime(2026, 11, 1, tzinfo=dt.UTC)))
    assert again.attachments == 2  # oct01 and oct12; nothing twice
    assert len(attachment_rows(db, workspace.slug)) == 4
    cursor_after = db.execute("SELECT uidvalidity, last_uid FROM imap_intake.cursor WHERE workspace=%s", (workspace.slug,)).fetchone()
    assert cursor_after == cursor_before


def test_every_message_gets_an_outcome_and_a_bad_one_does_not_block_the_batch(dovecot, mail_user, append, db, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    big = message(sender="a@x.example", to=mail_user, subject="big", attachments=[("big.pdf", "application/pdf", po_pdf("1", padding=300_000))])
    garbage = b"From: broken@x.example\r\nTo: " + mail_user.encode() + b"\r\nContent-Type: multipart/mixed; boundary=\"zz\r\n\r\n--yy\r\n\x00\xff\xfe garbage\r\n"
    elsewhere = message(sender="a@x.example", to="someone-else@example.test", subject="not ours", attachments=[("a.csv", "text/csv", PO_CSV_EN)])
    good = message(sender="a@x.example", to=mail_user, subject="good", attachments=[("a.csv", "text/csv", PO_CSV_EN)])
    append(mail_user, [(big.as_bytes(), None), (garbage, None), (elsewhere.as_bytes(), None), (good.as_bytes(), None)])
    workspace = make_workspace(unique("ws"), storage_base=f"file://{tmp_path}", max_attachment_mb=0.1, recipients=(mail_user,))
    run(workspace, make_settings(dovecot, mail_user), db)
    rows = dict(db.execute("SELECT subject, outcome FROM imap_intake.message WHERE workspace=%s", (workspace.slug,)).fetchall())
    assert rows["big"] == "too_large"
    assert rows["not ours"] == "not_routed"
    assert rows["good"] == "imported"
    assert rows[""] in {"no_supported_attachment", "unparseable"}
    reasons = [r[0] for r in db.execute("SELECT reason FROM imap_intake.message WHERE workspace=%s", (workspace.slug,))]
    assert all(reasons)


def test_supplier_rules_and_forwarded_senders(dovecot, mail_user, append, db, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from imap_intake.config import SupplierRule

    append(mail_user, demo_mailbox(mail_user))
    workspace = make_workspace(unique("ws"), storage_base=f"file://{tmp_path}", supplier_rules=(
        SupplierRule("nordwind-logistik.example", "Nordwind"), SupplierRule("buyer@acme-retail.example", "Acme")))
    run(workspace, make_settings(dovecot, mail_user), db)
    suppliers = dict(db.execute(
        "SELECT subject, supplier || ' / ' || supplier_rule FROM imap_intake.message WHERE workspace=%s AND outcome='imported'",
        (workspace.slug,)).fetchall())
    assert suppliers["Bestellung 4500012345 (CSV)"] == "Nordwind / sender nordwind-logistik.example"
    assert suppliers["Fwd: PO-7731"] == "Acme / forwarded sender buyer@acme-retail.example"
    assert suppliers["Order UBL-34127"] == "Default Supplier / default supplier"
