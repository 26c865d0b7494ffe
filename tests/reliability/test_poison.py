"""Poison messages between good ones: each gets an outcome, the folder never blocks (real Dovecot, real Postgres)."""

from __future__ import annotations

import pytest

from devstack.samples import PO_CSV_EN, message, po_pdf
from imap_intake.exceptions import StorageError
from imap_intake.mime.extract import Attachment
from imap_intake.service import reading as poll_module
from imap_intake.service.poll import poll
from imap_intake.store.storage import AttachmentStore
from tests.conftest import make_settings, make_workspace
from tests.reliability.report import record
from tests.service.helpers import NOW, attachment_rows, outcomes

pytestmark = pytest.mark.integration
GOOD = 12


def _mail(to: str, subject: str, name: str, data: bytes) -> bytes:
    return message(sender="buyer@acme.example", to=to, subject=subject, attachments=[(name, "application/octet-stream", data)]).as_bytes()


def test_poison_messages_never_block_the_folder(dovecot, mail_user, append, db, unique, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    good = [_mail(mail_user, f"PO {n}", f"po-{n}.pdf", po_pdf(str(n))) for n in range(GOOD)]
    nul_name = _mail(mail_user, "NUL", "NULNAME.csv", PO_CSV_EN).replace(b'filename="NULNAME.csv"', b"filename*=utf-8''po%00.csv")
    crash = _mail(mail_user, "CRASH-ME", "c.csv", PO_CSV_EN + b"c")
    refused = _mail(mail_user, "REFUSED", "refused.pdf", po_pdf("refused"))
    mailbox = good[:4] + [nul_name] + good[4:8] + [crash] + good[8:10] + [refused] + good[10:]
    append(mail_user, [(raw, None) for raw in mailbox])
    workspace = make_workspace(unique("ws"), storage_base=f"file://{tmp_path}", batch_size=5)
    settings = make_settings(dovecot, mail_user)
    store = AttachmentStore(workspace.storage_base)
    real_extract = poll_module.extract

    def extract(raw: bytes, limits):  # type: ignore[no-untyped-def]
        if b"CRASH-ME" in raw:
            raise RuntimeError("injected extraction crash")
        return real_extract(raw, limits)

    def put(attachment: Attachment) -> str:
        if attachment.original_filename == "refused.pdf":
            raise StorageError("injected: the store refuses this one object")
        return store.put(attachment.data, attachment.sha256)

    monkeypatch.setattr(poll_module, "extract", extract)
    first = poll(workspace, settings, connection=db, now=NOW, store=put, probe_store=store.probe)
    second = poll(workspace, settings, connection=db, now=NOW, store=put, probe_store=store.probe)
    cursor = db.execute("SELECT last_uid FROM imap_intake.cursor WHERE workspace=%s", (workspace.slug,)).fetchone()[0]
    counts = outcomes(db, workspace.slug)
    assert counts == {"imported": GOOD + 1, "failed": 2}
    assert len(attachment_rows(db, workspace.slug)) == GOOD + 1 and cursor == len(mailbox)
    assert second.fetched == 0 and second.attachments == 0
    record("poison messages in a folder", messages=len(mailbox), good_attachments_stored=first.attachments,
           nul_name_imported=counts["imported"] - GOOD, failed_with_reason=counts["failed"], cursor_moved_to=cursor,
           second_poll_new=second.fetched)
