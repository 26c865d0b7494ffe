"""Extraction on real .eml bytes: forwards, RFC 2231/2047 names, sniffing, inline parts, TNEF."""

from __future__ import annotations

import email.policy
from email.message import EmailMessage

import pytest

from devstack.samples import PO_CSV_DE, PO_CSV_EN, UBL_ORDER, forward, make_xlsx, message, po_pdf
from imap_intake.mime.extract import Limits, extract, fingerprint
from imap_intake.mime.tnef import TnefFile, pack

SMTP = email.policy.SMTP


def raw(msg: EmailMessage) -> bytes:
    return msg.as_bytes(policy=SMTP)


def test_pdf_csv_xml_attachments_are_found() -> None:
    msg = message(sender="Buyer <Buyer@Acme.example>", to="orders@x.example", subject="PO",
                  attachments=[("po.pdf", "application/pdf", po_pdf("1")), ("po.csv", "text/csv", PO_CSV_EN),
                               ("po.xml", "application/xml", UBL_ORDER)])
    result = extract(raw(msg))
    assert [a.kind for a in result.attachments] == ["pdf", "csv", "xml"]
    assert result.sender == "buyer@acme.example"
    assert result.recipients == ("orders@x.example",)


def test_octet_stream_pdf_counts_and_renamed_docx_does_not() -> None:
    import io
    import zipfile

    docx = io.BytesIO()
    with zipfile.ZipFile(docx, "w") as archive:
        archive.writestr("word/document.xml", "<w/>")
    msg = message(sender="a@b.example", to="o@x.example", subject="s", attachments=[
        ("scan", "application/octet-stream", po_pdf("2")),
        ("order.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", docx.getvalue()),
        ("real.xlsx", "application/octet-stream", make_xlsx([["Qty", "SKU"], [1, "A"]])),
    ])
    result = extract(raw(msg))
    assert [(a.kind, a.filename) for a in result.attachments] == [("pdf", "scan.pdf"), ("xlsx", "real.xlsx")]
    assert result.skipped[0].kind == "docx" and "unsupported type: docx" in result.skipped[0].reason


@pytest.mark.parametrize("depth", [1, 3, 10])
def test_forwarded_messages_are_opened_at_any_depth(depth: int) -> None:
    inner = message(sender="orig@acme.example", to="sales@x.example", subject="PO", attachments=[("po.csv", "text/csv", PO_CSV_EN)])
    for level in range(depth):
        inner = forward(inner, sender=f"fwd{level}@x.example", to="orders@x.example", note="fyi")
    result = extract(raw(inner))
    assert [a.filename for a in result.attachments] == ["po.csv"]
    assert "orig@acme.example" in result.forwarded_senders


def test_forward_depth_is_bounded() -> None:
    inner = message(sender="o@a.example", to="t@x.example", subject="PO", attachments=[("po.csv", "text/csv", PO_CSV_EN)])
    for level in range(30):
        inner = forward(inner, sender=f"f{level}@x.example", to="o@x.example", note="fyi")
    result = extract(raw(inner), Limits(max_depth=20))
    assert result.attachments == ()
    assert any("nested deeper than 20" in d for d in result.defects)


def test_rfc2231_continuations_and_charset() -> None:
    body = (
        b"From: a@b.example\r\nTo: o@x.example\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nhi\r\n--B\r\n"
        b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
        b"Content-Disposition: attachment;\r\n filename*0*=utf-8''Bestellung%20M%C3%BC;\r\n filename*1*=ller%20%E2%82%AC.pdf\r\n\r\n"
        + __import__("base64").encodebytes(po_pdf("3")) + b"\r\n--B--\r\n"
    )
    result = extract(body)
    assert result.attachments[0].original_filename == "Bestellung Müller €.pdf"


def test_rfc2047_encoded_filename() -> None:
    body = (
        b"From: a@b.example\r\nTo: o@x.example\r\nSubject: =?utf-8?q?Bestellung_f=C3=BCr_M=C3=A4rz?=\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
        b"Content-Type: text/csv; name=\"=?iso-8859-1?q?B=E4ckerei.csv?=\"\r\nContent-Disposition: attachment; filename=\"=?iso-8859-1?q?B=E4ckerei.csv?=\"\r\n\r\n"
        + PO_CSV_EN + b"\r\n--B--\r\n"
    )
    result = extract(body)
    assert result.subject == "Bestellung für März"
    assert result.attachments[0].original_filename == "Bäckerei.csv"


def test_inline_images_of_related_are_left_out_but_inline_pdf_kept() -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@b.example", "o@x.example", "html"
    msg.set_content("text")
    msg.add_alternative("<p>hi <img src='cid:logo'></p>", subtype="html")
    html = msg.get_payload()[1]
    html.add_related(b"\x89PNG\r\n\x1a\n" + b"0" * 50, maintype="image", subtype="png", cid="<logo>")
    msg.add_attachment(po_pdf("4"), maintype="application", subtype="pdf", filename="inline.pdf", disposition="inline")
    result = extract(raw(msg))
    assert [a.filename for a in result.attachments] == ["inline.pdf"]


def test_signatures_are_not_attachments() -> None:
    msg = message(sender="a@b.example", to="o@x.example", subject="s", attachments=[
        ("po.csv", "text/csv", PO_CSV_EN), ("smime.p7s", "application/pkcs7-signature", b"\x30\x82sig")])
    assert [a.filename for a in extract(raw(msg)).attachments] == ["po.csv"]


def test_same_name_twice_is_kept_twice() -> None:
    msg = message(sender="a@b.example", to="o@x.example", subject="s", attachments=[
        ("order.csv", "text/csv", PO_CSV_EN), ("order.csv", "text/csv", PO_CSV_DE)])
    result = extract(raw(msg))
    assert [a.filename for a in result.attachments] == ["order.csv", "order.csv"]
    assert len({a.index for a in result.attachments}) == 2


@pytest.mark.parametrize("name", ["../../etc/passwd.csv", "..\\..\\win.csv", "/abs/path.csv", "a\x00b\x1b.csv", "\u202egpj.csv", "x" * 400 + ".csv"])
def test_stored_names_are_safe(name: str) -> None:
    msg = message(sender="a@b.example", to="o@x.example", subject="s", attachments=[("placeholder", "text/csv", PO_CSV_EN)])
    msg.get_payload()[1].set_param("filename", name, header="Content-Disposition")
    attachment = extract(raw(msg)).attachments[0]
    assert "/" not in attachment.filename and "\\" not in attachment.filename and ".." not in attachment.filename
    assert all(ord(c) >= 32 for c in attachment.filename)
    assert len(attachment.filename.encode()) <= 180
    assert attachment.filename.endswith(".csv")


def test_control_characters_via_rfc2231_are_removed() -> None:
    body = (
        b"From: a@b.example\r\nTo: o@x.example\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/csv\r\n"
        b"Content-Disposition: attachment; filename*=utf-8''..%2F..%2Fa%00b%0D%0A.csv\r\n\r\n" + PO_CSV_EN + b"\r\n--B--\r\n"
    )
    attachment = extract(body).attachments[0]
    assert attachment.original_filename == "../../a\x00b .csv"  # kept as data (folded line breaks)
    assert attachment.filename == "_._a_b .csv"


def test_oversized_attachment_is_skipped_with_reason() -> None:
    msg = message(sender="a@b.example", to="o@x.example", subject="s", attachments=[("big.pdf", "application/pdf", po_pdf("5", padding=50_000))])
    result = extract(raw(msg), Limits(max_attachment_bytes=10_000))
    assert result.attachments == () and result.skipped[0].reason.startswith("too large")


def test_winmail_dat_is_unpacked() -> None:
    tnef = pack([TnefFile("inner.csv", PO_CSV_EN), TnefFile("logo.png", b"\x89PNG\r\n\x1a\n0000")])
    msg = message(sender="a@b.example", to="o@x.example", subject="s", attachments=[("winmail.dat", "application/ms-tnef", tnef)])
    result = extract(raw(msg))
    assert [a.filename for a in result.attachments] == ["inner.csv"]
    assert [s.kind for s in result.skipped] == ["image"]


def test_truncated_tnef_is_recorded_not_raised() -> None:
    tnef = pack([TnefFile("inner.csv", PO_CSV_EN)])[:-20]
    msg = message(sender="a@b.example", to="o@x.example", subject="s", attachments=[("winmail.dat", "application/ms-tnef", tnef)])
    result = extract(raw(msg))
    assert [(s.original_filename, s.reason.split(" at byte")[0]) for s in result.skipped] == [("inner.csv", "winmail.dat is truncated")]


def test_fingerprint_survives_added_trace_headers_but_not_other_bodies() -> None:
    body = raw(message(sender="a@b.example", to="o@x.example", subject="s", message_id="<abc@b.example>", attachments=[("a.csv", "text/csv", PO_CSV_EN)]))
    redelivered = b"Received: from mx2 by mx3; Sat, 21 Nov 2026 10:00:00 +0000\r\nDelivered-To: o@x.example\r\n" + body
    assert fingerprint(body, "abc@b.example") == fingerprint(redelivered, "abc@b.example")
    assert fingerprint(body, "abc@b.example") != fingerprint(body.replace(b"Please find", b"Please see"), "abc@b.example")
    assert fingerprint(body, None).startswith("raw:")


def test_no_attachments_means_none() -> None:
    result = extract(raw(message(sender="a@b.example", to="o@x.example", subject="question", body="when?")))
    assert result.attachments == () and result.skipped == ()


def test_extraction_leaves_no_reference_cycles() -> None:
    """Attachment bytes must be freed when the result is dropped, not when the cyclic GC runs
    (a self-referencing closure once kept every 25 MB attachment of a batch alive)."""
    import gc

    body = raw(message(sender="a@b.example", to="o@x.example", subject="s", attachments=[
        ("a.csv", "text/csv", PO_CSV_EN), ("w.dat", "application/ms-tnef", pack([TnefFile("i.csv", PO_CSV_DE)]))]))
    gc.collect()
    gc.disable()
    try:
        result = extract(body)
        assert len(result.attachments) == 2
        del result
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_a_to_header_of_5000_open_groups_still_stores_the_attachments() -> None:
    """A real message's To of thousands of address groups made the standard library's parser raise
    RecursionError, which lost the message's attachments."""
    groups = ", ".join(f"list{i}: member{i}@corp.example" for i in range(5000))
    msg = message(sender="Buyer <buyer@acme.example>", to="orders@x.example", subject="PO",
                  attachments=[("po.csv", "text/csv", PO_CSV_EN)])
    del msg["To"]
    data = raw(msg).replace(b"Subject:", b"To: orders@x.example, " + groups.encode() + b"\r\nSubject:", 1)
    result = extract(data)
    assert [a.kind for a in result.attachments] == ["csv"]
    assert result.sender == "buyer@acme.example"
    assert result.recipients[0] == "orders@x.example" and len(result.recipients) == 5001


@pytest.mark.parametrize(("item_class", "words"), [
    ("IPM.DistList", "a distribution list"), ("IPM.Contact", "a contact"),
    ("IPM.Appointment", "an appointment"), ("IPM.Note", "an e-mail"), ("", "an Outlook item"),
])
def test_an_outlook_item_in_a_winmail_dat_is_recorded_as_skipped(item_class: str, words: str) -> None:
    """A distribution list (or contact, appointment) forwarded from Outlook is an embedded item with no
    file of its own: it must be recorded, not vanish."""
    item = pack([], message_class=item_class)
    tnef = pack([TnefFile("po.csv", PO_CSV_EN)], message_class="IPM.Note", embedded=[("Buyers", item)])
    msg = message(sender="a@b.example", to="o@x.example", subject="s", attachments=[("winmail.dat", "application/ms-tnef", tnef)])
    result = extract(raw(msg))
    assert [a.filename for a in result.attachments] == ["po.csv"]
    assert [(s.original_filename, s.kind) for s in result.skipped] == [("Buyers", "tnef")]
    assert result.skipped[0].reason.startswith(words) and "not an order" in result.skipped[0].reason


def test_an_embedded_item_with_a_file_gives_the_file() -> None:
    item = pack([TnefFile("inner.csv", PO_CSV_DE)], message_class="IPM.Note")
    tnef = pack([], message_class="IPM.Note", embedded=[("Fwd: order", item)])
    msg = message(sender="a@b.example", to="o@x.example", subject="s", attachments=[("winmail.dat", "application/ms-tnef", tnef)])
    result = extract(raw(msg))
    assert [a.filename for a in result.attachments] == ["inner.csv"] and result.skipped == ()


def test_a_winmail_dat_without_attachments_is_recorded() -> None:
    msg = message(sender="a@b.example", to="o@x.example", subject="s",
                  attachments=[("winmail.dat", "application/ms-tnef", pack([], message_class="IPM.Note"))])
    result = extract(raw(msg))
    assert result.attachments == () and [s.reason for s in result.skipped] == [
        "winmail.dat holds no attachment (only Outlook's copy of the message body)"]
