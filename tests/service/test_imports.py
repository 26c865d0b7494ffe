"""Imports against real Postgres: SKIP LOCKED claims, retries, quarantine, custom importers."""

from __future__ import annotations

import threading

import pytest

from devstack.samples import PO_CSV_DE, PO_CSV_EN, UBL_ORDER, message
from imap_intake.orders import Order
from imap_intake.service.imports import import_pending
from imap_intake.store import db as store_db
from imap_intake.store.storage import AttachmentStore
from tests.conftest import make_settings, make_workspace
from tests.service.helpers import NOW, run

pytestmark = pytest.mark.integration


def variant(n: int) -> tuple[str, str, bytes]:
    """A distinct, valid order per n: German CSV, English CSV or UBL in turn."""
    if n % 3 == 0:
        return "o.csv", "text/csv", PO_CSV_DE + f"4500012345;03.11.2026;Z-{n};Extra;1;ST;1,00;1,00;EUR\n".encode("cp1252")
    if n % 3 == 1:
        return "o.csv", "text/csv", PO_CSV_EN + f"PO-7731,2026-11-04,Z-{n},Extra,1,1.00,1.00,USD\n".encode()
    return "o.xml", "application/xml", UBL_ORDER + f"<!-- {n} -->".encode()


def seed(dovecot, user, append, db, workspace, count: int) -> None:  # type: ignore[no-untyped-def]
    append(user, [(message(sender="a@x.example", to=user, subject=f"o{n}", attachments=[variant(n)]).as_bytes(), None) for n in range(count)])
    run(workspace, make_settings(dovecot, user), db)


def test_two_import_tasks_at_once_import_each_attachment_once(dovecot, mail_user, append, db, postgres, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    workspace = make_workspace(unique("ws"), storage_base=f"file://{tmp_path}", batch_size=20)
    seed(dovecot, mail_user, append, db, workspace, 30)
    store = AttachmentStore(workspace.storage_base)
    results = []

    def worker() -> None:
        with store_db.connect_dsn(postgres.dsn) as connection:
            results.append(import_pending(workspace, connection=connection, read=store.get, now=NOW))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sum(r.imported for r in results) == 30
    orders = db.execute("SELECT attachment, count(*) FROM imap_intake.purchase_order WHERE workspace=%s GROUP BY 1", (workspace.slug,)).fetchall()
    assert len(orders) == 30 and all(n == 1 for _a, n in orders)
    statuses = db.execute("SELECT import_status, count(*) FROM imap_intake.attachment WHERE workspace=%s GROUP BY 1", (workspace.slug,)).fetchall()
    assert statuses == [("imported", 30)]


def test_failures_are_retried_on_later_runs_then_quarantined(dovecot, mail_user, append, db, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    workspace = make_workspace(unique("ws"), storage_base=f"file://{tmp_path}", max_import_attempts=2)
    append(mail_user, [
        (message(sender="a@x.example", to=mail_user, subject="bad", attachments=[("bad.csv", "text/csv", b"name,colour\nwidget,blue\n")]).as_bytes(), None),
        (message(sender="a@x.example", to=mail_user, subject="good", attachments=[("good.csv", "text/csv", PO_CSV_EN)]).as_bytes(), None),
    ])
    run(workspace, make_settings(dovecot, mail_user), db)
    store = AttachmentStore(workspace.storage_base)
    first = import_pending(workspace, connection=db, read=store.get, now=NOW)
    assert (first.imported, first.failed, first.quarantined) == (1, 1, 0)
    again_same_run = import_pending(workspace, connection=db, read=store.get, now=NOW)
    assert (again_same_run.imported, again_same_run.failed) == (0, 0)  # not retried within one run
    later = import_pending(workspace, connection=db, read=store.get, now=NOW + dt.timedelta(minutes=15))
    assert later.quarantined == 1
    row = db.execute("SELECT import_status, attempts, last_error FROM imap_intake.attachment WHERE workspace=%s AND filename='bad.csv'", (workspace.slug,)).fetchone()
    assert row[0] == "quarantined" and row[1] == 2 and "no header row" in row[2]


def custom_importer(data: bytes, *, kind: str, filename: str) -> Order:
    return Order(format="custom", order_number=filename, order_date=None, currency=None, buyer=None, total=None, lines=())


def test_workspace_importer_replaces_the_built_in_one(dovecot, mail_user, append, db, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    workspace = make_workspace(unique("ws"), storage_base=f"file://{tmp_path}", importer="tests.service.test_imports:custom_importer")
    append(mail_user, [(message(sender="a@x.example", to=mail_user, subject="x", attachments=[("mine.csv", "text/csv", PO_CSV_EN)]).as_bytes(), None)])
    run(workspace, make_settings(dovecot, mail_user), db)
    result = import_pending(workspace, connection=db, read=AttachmentStore(workspace.storage_base).get, now=NOW)
    assert result.imported == 1
    assert db.execute("SELECT format, order_number FROM imap_intake.purchase_order WHERE id=%s", (result.orders[0],)).fetchone() == ("custom", "mine.csv")


def _orders(db, slug: str) -> list[tuple[object, ...]]:  # type: ignore[no-untyped-def]
    return db.execute("SELECT id, format, order_number, supplier, relation, related_to FROM imap_intake.purchase_order "
                      "WHERE workspace=%s ORDER BY id", (slug,)).fetchall()


def test_the_same_order_as_pdf_and_csv_is_one_order_and_a_linked_possible_duplicate(dovecot, mail_user, append, db, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from devstack.samples import po_pdf

    workspace = make_workspace(unique("ws"), storage_base=f"file://{tmp_path}")
    append(mail_user, [(message(sender="einkauf@nordwind.example", to=mail_user, subject=s, attachments=[a]).as_bytes(), None) for s, a in [
        ("Bestellung 4500012345 (CSV)", ("b.csv", "text/csv", PO_CSV_DE)),
        ("Bestellung 4500012345", ("b.pdf", "application/pdf", po_pdf("4500012345"))),
        ("Bestellung 4500012345 again", ("b2.csv", "text/csv", PO_CSV_DE.replace(b"\n", b"\r\n"))),  # a resend, same lines
    ]])
    run(workspace, make_settings(dovecot, mail_user), db)
    result = import_pending(workspace, connection=db, read=AttachmentStore(workspace.storage_base).get, now=NOW)
    assert result.imported == 3 and result.possible_duplicates == 2 and result.revisions == 0
    (first, pdf, resend) = _orders(db, workspace.slug)
    assert first[4] is None and first[2] == "4500012345"
    assert (pdf[1], pdf[4], pdf[5]) == ("pdf", "possible_duplicate", first[0])  # the PDF's lines cannot be compared: possible
    assert (resend[4], resend[5]) == ("possible_duplicate", first[0])


def test_a_corrected_order_is_a_revision_and_another_suppliers_number_is_not_related(dovecot, mail_user, append, db, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from imap_intake.config import SupplierRule

    workspace = make_workspace(unique("ws"), storage_base=f"file://{tmp_path}", default_supplier=None,
                               supplier_rules=(SupplierRule("a.example", "A"), SupplierRule("b.example", "B")))
    corrected = PO_CSV_EN.replace(b",12,8.50,102.00,", b",24,8.50,204.00,", 1)
    assert corrected != PO_CSV_EN
    append(mail_user, [(message(sender=sender, to=mail_user, subject="PO-7731", attachments=[("po.csv", "text/csv", body)]).as_bytes(), None)
                       for sender, body in [("x@a.example", PO_CSV_EN), ("x@a.example", corrected), ("y@b.example", PO_CSV_EN)]])
    run(workspace, make_settings(dovecot, mail_user), db)
    result = import_pending(workspace, connection=db, read=AttachmentStore(workspace.storage_base).get, now=NOW)
    assert result.imported == 3 and result.revisions == 1 and result.possible_duplicates == 0
    a1, a2, b1 = _orders(db, workspace.slug)
    assert (a2[3], a2[4], a2[5]) == ("A", "revision", a1[0]) and (b1[3], b1[4]) == ("B", None)


def test_edi_attachments_are_stored_and_imported_when_the_workspace_accepts_them(dovecot, mail_user, append, db, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.orders.test_edi import EDIFACT, X12_850

    workspace = make_workspace(unique("ws"), storage_base=f"file://{tmp_path}", accepted_types=frozenset({"pdf", "csv", "edi"}))
    append(mail_user, [(message(sender="edi@acme.example", to=mail_user, subject=name, attachments=[(name, ctype, body)]).as_bytes(), None)
                       for name, ctype, body in [("PO4500098765.txt", "text/plain", X12_850.encode()),
                                                 ("ORDERS", "application/octet-stream", EDIFACT.encode())]])
    run(workspace, make_settings(dovecot, mail_user), db)
    result = import_pending(workspace, connection=db, read=AttachmentStore(workspace.storage_base).get, now=NOW)
    assert result.imported == 2
    rows = db.execute("SELECT o.format, o.order_number, count(l.line_no) FROM imap_intake.purchase_order o JOIN "
                      "imap_intake.purchase_order_line l ON l.purchase_order = o.id WHERE o.workspace=%s GROUP BY o.id ORDER BY o.id",
                      (workspace.slug,)).fetchall()
    assert rows == [("x12", "4500098765", 3), ("edifact", "PO+2026'118", 2)]
