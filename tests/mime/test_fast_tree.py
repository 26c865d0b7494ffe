"""The compiled parser's tree (mime/fast_tree.py) is used only where extraction then equals the email
package's reading (the reference), compared on real mailers' messages, hostile ones, damaged copies
and generated structures; the common shapes of purchase-order mail take it; the risky ones do not."""

from __future__ import annotations

import base64
import random
from pathlib import Path

import pytest

from imap_intake.mime import fast_tree
from imap_intake.mime.extract import ExtractedMessage, Limits, extract
from tests.mime.generated_mail import Generator
from tests.reliability.hostile import cases

REAL = Path(__file__).parent / "real"
EVERYTHING = Limits(accepted=frozenset({"pdf", "csv", "xlsx", "xml", "text", "image", "unknown", "tnef"}))
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n" * 40


def reference(raw: bytes, limits: Limits = EVERYTHING) -> ExtractedMessage:
    """The email package's reading."""
    return extract(raw, limits, compiled=False)


def disagreements(messages: list[bytes]) -> tuple[int, list[bytes]]:
    """(how many took the fast path, those whose extraction differs from the reference)."""
    taken, differ = 0, []
    for raw in messages:
        if fast_tree.parse(raw) is None:
            continue
        taken += 1
        if extract(raw, EVERYTHING) != reference(raw):
            differ.append(raw)
    return taken, differ


def damaged(raw: bytes, seed: int) -> list[bytes]:
    rnd = random.Random(seed)
    scrambled = bytearray(raw)
    for _ in range(max(1, len(raw) // 2000)):
        scrambled[rnd.randrange(len(raw))] = rnd.randrange(256)
    return [raw, raw[: len(raw) * 2 // 3], bytes(scrambled), raw.replace(b"\r\n", b"\n"),
            raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")]


def test_the_compiled_parser_is_installed() -> None:
    assert fast_tree.available(), "fast-mail-parser is in requirements.in: without it every message is read the slow way"


@pytest.mark.parametrize("damage", [0.0, 0.3, 1.0])
def test_generated_mail_is_read_the_same_wherever_the_fast_path_is_taken(damage: float) -> None:
    messages = [Generator(seed, damage).message() for seed in range(5000)]
    taken, differ = disagreements(messages)
    assert not differ, differ[0][:3000]
    assert taken >= 300  # the comparison means something only where the fast path is taken


def test_real_and_hostile_mail_and_damaged_copies_are_read_the_same() -> None:
    samples = [path.read_bytes() for path in sorted(REAL.glob("*.eml"))] + [raw for raw in cases().values() if raw]
    messages = [variant for n, raw in enumerate(samples) for variant in damaged(raw, n)]
    taken, differ = disagreements(messages)
    assert not differ, differ[0][:3000]
    assert taken >= 10


def _b64(data: bytes) -> bytes:
    text = base64.b64encode(data)
    return b"\r\n".join(text[i : i + 76] for i in range(0, len(text), 76))


OUTLOOK = (
    b'From: "Buyer" <buyer@acme.example>\r\nTo: <orders@example.com>\r\nSubject: PO 4711\r\n'
    b"Date: Mon, 2 Nov 2026 09:30:00 +0100\r\nMessage-ID: <000001da1234$56789abc$0@acme.example>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed;\r\n\tboundary="----=_NextPart_000_0001_01DA1234.56789ABC"\r\n'
    b"X-Mailer: Microsoft Outlook 16.0\r\n\r\nThis is a multipart message in MIME format.\r\n\r\n"
    b"------=_NextPart_000_0001_01DA1234.56789ABC\r\n"
    b'Content-Type: multipart/alternative;\r\n\tboundary="----=_NextPart_001_0002_01DA1234.56789ABC"\r\n\r\n\r\n'
    b"------=_NextPart_001_0002_01DA1234.56789ABC\r\n"
    b'Content-Type: text/plain;\r\n\tcharset="us-ascii"\r\nContent-Transfer-Encoding: 7bit\r\n\r\nPlease find attached.\r\n\r\n'
    b"------=_NextPart_001_0002_01DA1234.56789ABC\r\n"
    b'Content-Type: text/html;\r\n\tcharset="us-ascii"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
    b"<html><body>Please find=20attached.</body></html>\r\n\r\n"
    b"------=_NextPart_001_0002_01DA1234.56789ABC--\r\n\r\n"
    b"------=_NextPart_000_0001_01DA1234.56789ABC\r\n"
    b'Content-Type: application/pdf;\r\n\tname="PO-4711.pdf"\r\nContent-Transfer-Encoding: base64\r\n'
    b'Content-Disposition: attachment;\r\n\tfilename="PO-4711.pdf"\r\n\r\n' + _b64(PDF) + b"\r\n\r\n"
    b"------=_NextPart_000_0001_01DA1234.56789ABC--\r\n"
)
GMAIL = (
    b"MIME-Version: 1.0\r\nFrom: Buyer <buyer@gmail.example>\r\nDate: Mon, 2 Nov 2026 09:30:00 +0100\r\n"
    b"Message-ID: <CAF=abc@mail.gmail.com>\r\nSubject: PO 12\r\nTo: orders@example.com\r\n"
    b'Content-Type: multipart/mixed; boundary="000000000000a1b2c3d4e5f60718"\r\n\r\n'
    b'--000000000000a1b2c3d4e5f60718\r\nContent-Type: multipart/alternative; boundary="000000000000a1b2c3d4e5f60716"\r\n\r\n'
    b'--000000000000a1b2c3d4e5f60716\r\nContent-Type: text/plain; charset="UTF-8"\r\n\r\nPO attached\r\n\r\n'
    b'--000000000000a1b2c3d4e5f60716\r\nContent-Type: text/html; charset="UTF-8"\r\n\r\n<div dir="ltr">PO attached</div>\r\n\r\n'
    b"--000000000000a1b2c3d4e5f60716--\r\n"
    b'--000000000000a1b2c3d4e5f60718\r\nContent-Type: text/csv; charset="US-ASCII"; name="PO-12.csv"\r\n'
    b'Content-Disposition: attachment; filename="PO-12.csv"\r\nContent-Transfer-Encoding: base64\r\n'
    b"Content-ID: <f_abc123>\r\nX-Attachment-Id: f_abc123\r\n\r\n" + _b64(b"SKU,Qty\r\nA-1,2\r\n") + b"\r\n"
    b"--000000000000a1b2c3d4e5f60718--\r\n"
)
APPLE = (
    b"From: Buyer <buyer@icloud.example>\r\nContent-Type: multipart/mixed;\r\n\tboundary=\"Apple-Mail=_8B1C6F0E-1\"\r\n"
    b"Mime-Version: 1.0 (Mac OS X Mail 16.0)\r\nSubject: PO 9\r\nMessage-Id: <9@icloud.example>\r\nTo: orders@example.com\r\n\r\n\r\n"
    b"--Apple-Mail=_8B1C6F0E-1\r\nContent-Transfer-Encoding: 7bit\r\nContent-Type: text/plain;\r\n\tcharset=us-ascii\r\n\r\nHere it is.\r\n\r\n"
    b"--Apple-Mail=_8B1C6F0E-1\r\nContent-Disposition: attachment;\r\n\tfilename=PO-9.xml\r\n"
    b"Content-Type: text/xml;\r\n\tx-unix-mode=0644;\r\n\tname=\"PO-9.xml\"\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
    b'<?xml version="1.0"?><Order><ID>9</ID></Order>\r\n\r\n--Apple-Mail=_8B1C6F0E-1--\r\n'
)
FORWARDED = (
    b"From: Team <team@example.com>\r\nTo: orders@example.com\r\nSubject: Fwd: PO 5\r\nMessage-ID: <f5@example.com>\r\n"
    b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="outer"\r\n\r\n'
    b"--outer\r\nContent-Type: text/plain\r\n\r\nforwarding\r\n--outer\r\nContent-Type: message/rfc822\r\n\r\n"
    b'From: Supplier <sales@supplier.example>\r\nSubject: PO 5\r\nContent-Type: multipart/mixed; boundary="inner"\r\n\r\n'
    b'--inner\r\nContent-Type: application/pdf; name="PO-5.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n' + _b64(PDF)
    + b"\r\n--inner--\r\n\r\n--outer--\r\n"
)


@pytest.mark.parametrize(("raw", "files"), [
    (OUTLOOK, ["PO-4711.pdf"]), (GMAIL, ["PO-12.csv"]), (APPLE, ["PO-9.xml"]), (FORWARDED, ["PO-5.pdf"]),
    (OUTLOOK.replace(b"\r\n", b"\n"), ["PO-4711.pdf"]),
], ids=["outlook", "gmail", "apple-mail", "forwarded", "outlook-lf"])
def test_purchase_orders_as_mailers_write_them_take_the_fast_path(raw: bytes, files: list[str]) -> None:
    assert fast_tree.parse(raw) is not None
    fast = extract(raw)
    assert fast == reference(raw, Limits())
    assert [a.original_filename for a in fast.attachments] == files
    assert fast.forwarded_senders == (("sales@supplier.example",) if raw is FORWARDED else ())


def _swap(raw: bytes, old: bytes, new: bytes) -> bytes:
    assert old in raw
    return raw.replace(old, new, 1)


@pytest.mark.parametrize("raw", [
    # an attachment in quoted-printable: the two decoders disagree on trailing white space and line ends
    _swap(GMAIL, b"Content-Transfer-Encoding: base64\r\nContent-ID", b"Content-Transfer-Encoding: quoted-printable\r\nContent-ID"),
    _swap(OUTLOOK, b"------=_NextPart_000_0001_01DA1234.56789ABC--", b""),  # no close delimiter (cut off)
    _swap(GMAIL, b'Content-Type: text/csv; charset="US-ASCII"; name="PO-12.csv"\r\n', b'Content-Type: text/csv; charset="US-ASCII"; name="PO-12.csv"\r\nContent-Type: application/pdf\r\n'),
    _swap(GMAIL, b'filename="PO-12.csv"', 'filename="Bestellung-\u00e4.csv"'.encode()),  # raw 8-bit name
    _swap(GMAIL, b"multipart/alternative", b"multipart/digest"),
    _swap(FORWARDED, b"message/rfc822", b"message/global"),
    _swap(FORWARDED, b"Content-Type: message/rfc822\r\n", b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n"),
    _swap(GMAIL, b"Content-Transfer-Encoding: base64\r\n", b"Content-Transfer-Encoding: base64 \r\n"),  # the email package would not decode it
    _swap(APPLE, b"--Apple-Mail=_8B1C6F0E-1\r\nContent-Disposition", b"--Apple-Mail=_8B1C6F0E-1\r\n--Apple-Mail=_8B1C6F0E-1--\r\nContent-Disposition"),
    _swap(OUTLOOK, b"Subject: PO 4711\r\n", b"Subject: PO 4711\r\nthis line is not a header\r\n"),
], ids=["qp-attachment", "no-close-delimiter", "two-content-types", "raw-8bit-name", "digest", "message-global",
        "encoded-forward", "cte-trailing-space", "delimiter-after-close", "broken-header-block"])
def test_what_the_fast_path_leaves_to_the_email_package(raw: bytes) -> None:
    assert fast_tree.parse(raw) is None
    assert extract(raw) == reference(raw, Limits())


def test_without_the_compiled_parser_every_message_is_read_by_the_email_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast_tree, "fast_mail_parser", None)
    assert fast_tree.parse(OUTLOOK) is None
    assert [a.original_filename for a in extract(OUTLOOK).attachments] == ["PO-4711.pdf"]
