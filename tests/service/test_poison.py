"""Never stuck: a poison message gets an outcome and the folder moves on (real Dovecot, real Postgres)."""

from __future__ import annotations

import datetime as dt

import pytest

from devstack.dovecot import flags
from devstack.samples import PO_CSV_EN, message, po_pdf
from imap_intake.exceptions import StorageError
from imap_intake.mime.extract import Attachment
from imap_intake.service import reading as poll_module
from imap_intake.service.poll import poll
from imap_intake.service.reread import reread
from imap_intake.store.storage import AttachmentStore
from tests.conftest import make_settings, make_workspace
from tests.service.helpers import NOW, attachment_rows, outcomes, run

pytestmark = pytest.mark.integration


def _raw_with_nul_name(to: str) -> bytes:
    good = message(sender="buyer@acme.example", to=to, subject="PO with a NUL", attachments=[("PLACEHOLDER.csv", "text/csv", PO_CSV_EN)])
    # RFC 2231 percent-encoding carries the NUL through Dovecot (which turns raw NUL bytes into 0x80).
    raw = good.as_bytes().replace(b'filename="PLACEHOLDER.csv"', b"filename*=utf-8''po%00-42.csv")
    assert b"po%00-42" in raw
    return raw


def _cursor(db, workspace: str) -> int | None:  # type: ignore[no-untyped-def]
    row = db.execute("SELECT last_uid FROM imap_intake.cursor WHERE workspace=%s", (workspace,)).fetchone()
    return int(row[0]) if row else None


def _good(to: str, n: int) -> bytes:
    return message(sender="buyer@acme.example", to=to, subject=f"PO {n}", attachments=[(f"po-{n}.pdf", "application/pdf", po_pdf(str(n)))]).as_bytes()


def test_nul_in_a_file_name_never_blocks_the_folder(dovecot, mail_user, append, db, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    append(mail_user, [(_good(mail_user, 1), None), (_raw_with_nul_name(mail_user), None), (_good(mail_user, 2), None)])
    workspace = make_workspace(unique("ws"), storage_base=f"file://{tmp_path}")
    settings = make_settings(dovecot, mail_user)
    before = flags(dovecot, mail_user)
    first = run(workspace, settings, db)
    assert first.fetched == 3 and first.attachments == 3
    assert outcomes(db, workspace.slug) == {"imported": 3}
    names = [r[0] for r in db.execute("SELECT original_filename FROM imap_intake.attachment WHERE workspace=%s ORDER BY id", (workspace.slug,))]
    assert names[1] == "po-42.csv"  # the name as sent, minus what Postgres cannot hold
    assert _cursor(db, workspace.slug) == 3
    second = run(workspace, settings, db)
    assert second.fetched == 0 and len(attachment_rows(db, workspace.slug)) == 3
    assert flags(dovecot, mail_user) == before


def test_extraction_crash_is_recorded_as_failed_and_the_cursor_moves(dovecot, mail_user, append, db, unique, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    append(mail_user, [(_good(mail_user, 1), None), (_good(mail_user, 666), None), (_good(mail_user, 2), None)])
    workspace = make_workspace(unique("ws"), storage_base=f"file://{tmp_path}")
    settings = make_settings(dovecot, mail_user)
    real_extract = poll_module.extract

    def crashing(raw: bytes, limits):  # type: ignore[no-untyped-def]
        if b"PO 666" in raw:
            raise RecursionError("maximum recursion depth exceeded (injected)")
        return real_extract(raw, limits)

    monkeypatch.setattr(poll_module, "extract", crashing)
    result = run(workspace, settings, db)
    assert result.outcomes == {"imported": 2, "failed": 1}
    reason = db.execute("SELECT reason FROM imap_intake.message WHERE workspace=%s AND outcome='failed'", (workspace.slug,)).fetchone()[0]
    assert "RecursionError" in reason and "imap-intake reread" in reason
    assert _cursor(db, workspace.slug) == 3
    # After the fix: reread reads it again and imports its attachment, once.
    monkeypatch.setattr(poll_module, "extract", real_extract)
    store = AttachmentStore(workspace.storage_base)
    again = reread(workspace, settings, connection=db, now=NOW, store=lambda a: store.put(a.data, a.sha256))
    assert [(c["uid"], c["was"], c["now"]) for c in again.changes] == [(2, "failed", "imported")]
    assert outcomes(db, workspace.slug) == {"imported": 3} and len(attachment_rows(db, workspace.slug)) == 3
    assert reread(workspace, settings, connection=db, now=NOW, store=lambda a: store.put(a.data, a.sha256)).reread == 0
    assert run(workspace, settings, db).fetched == 0 and len(attachment_rows(db, workspace.slug)) == 3


def test_an_attachment_the_store_refuses_fails_its_message_only(dovecot, mail_user, append, db, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    append(mail_user, [(_good(mail_user, 1), None), (_good(mail_user, 13), None), (_good(mail_user, 2), None)])
    workspace = make_workspace(unique("ws"), storage_base=f"file://{tmp_path}")
    settings = make_settings(dovecot, mail_user)
    store = AttachmentStore(workspace.storage_base)
    def put(attachment: Attachment) -> str:
        if attachment.original_filename == "po-13.pdf":
            raise StorageError(f"cannot write attachment {attachment.sha256}: object rejected by the bucket policy")
        return store.put(attachment.data, attachment.sha256)

    result = poll(workspace, settings, connection=db, now=NOW, store=put, probe_store=store.probe)
    assert result.outcomes == {"imported": 2, "failed": 1} and result.attachments == 2
    assert _cursor(db, workspace.slug) == 3
    assert run(workspace, settings, db).fetched == 0


def test_a_store_that_is_down_rolls_back_and_retries_later(dovecot, mail_user, append, db, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    append(mail_user, [(_good(mail_user, 1), None), (_good(mail_user, 2), None)])
    base = tmp_path / "store"
    workspace = make_workspace(unique("ws"), storage_base=f"file://{base}")
    settings = make_settings(dovecot, mail_user)
    base.parent.mkdir(exist_ok=True)
    base.write_text("not a directory: the store is down")
    with pytest.raises(StorageError):
        run_with_probe(workspace, settings, db)
    assert _cursor(db, workspace.slug) is None and outcomes(db, workspace.slug) == {}
    base.unlink()
    assert run_with_probe(workspace, settings, db).attachments == 2


def run_with_probe(workspace, settings, db):  # type: ignore[no-untyped-def]
    store = AttachmentStore(workspace.storage_base)
    return poll(workspace, settings, connection=db, now=NOW, store=lambda a: store.put(a.data, a.sha256), probe_store=store.probe)


def test_not_routed_messages_are_imported_after_a_supplier_rule_is_added(dovecot, mail_user, append, db, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    append(mail_user, [(_good(mail_user, 5), None)])
    slug = unique("ws")
    strict = make_workspace(slug, storage_base=f"file://{tmp_path}", default_supplier=None)
    settings = make_settings(dovecot, mail_user, default_supplier=None)
    assert run(strict, settings, db).outcomes == {"not_routed": 1}
    from imap_intake.config import SupplierRule

    ruled = make_workspace(slug, storage_base=f"file://{tmp_path}", default_supplier=None,
                           supplier_rules=(SupplierRule(match="acme.example", supplier="Acme"),))
    store = AttachmentStore(ruled.storage_base)
    done = reread(ruled, settings, connection=db, now=NOW + dt.timedelta(hours=1), store=lambda a: store.put(a.data, a.sha256))
    assert [(c["was"], c["now"]) for c in done.changes] == [("not_routed", "imported")]
    assert db.execute("SELECT supplier FROM imap_intake.attachment WHERE workspace=%s", (slug,)).fetchall() == [("Acme",)]
