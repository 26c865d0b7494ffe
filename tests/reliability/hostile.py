"""Hostile and broken mail, built in code (nothing binary is committed)."""

from __future__ import annotations

import base64
import functools
import struct

from devstack.samples import PO_CSV_EN, message, po_pdf
from imap_intake.mime.tnef import MAGIC


def _mime(headers: str, body: bytes) -> bytes:
    return headers.replace("\n", "\r\n").encode() + b"\r\n" + body


def nested_forward(depth: int, to: str = "o@x.example") -> bytes:
    """Built as bytes: the email package's own generator recurses too deep for this."""
    inner = message(sender="deep@x.example", to=to, subject="deep", attachments=[("po.csv", "text/csv", PO_CSV_EN)]).as_bytes()
    for level in range(depth):
        inner = (
            f"From: f{level}@x.example\r\nTo: {to}\r\nSubject: fwd {level}\r\nMIME-Version: 1.0\r\n"
            f'Content-Type: multipart/mixed; boundary="L{level}"\r\n\r\n--L{level}\r\nContent-Type: text/plain\r\n\r\nfwd\r\n'
            f"--L{level}\r\nContent-Type: message/rfc822\r\n\r\n"
        ).encode() + inner + f"\r\n--L{level}--\r\n".encode()
    return inner


def tnef_bomb() -> bytes:
    # An attachment attribute that claims 2 GB: must be refused, never allocated.
    return struct.pack("<IH", MAGIC, 1) + struct.pack("<BII", 2, 0x0006800F, 0x7FFFFFFF) + b"\x00" * 64


@functools.lru_cache(maxsize=1)
def zip_bomb_xlsx() -> bytes:
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/worksheets/sheet1.xml", b"\x00" * (300 * 1024 * 1024))  # 300 MB of zeros, ~300 KB packed
    return out.getvalue()


@functools.lru_cache(maxsize=4)
def cases(to: str = "orders@example.test") -> dict[str, bytes]:
    pdf_b64 = base64.encodebytes(po_pdf("9")).decode()
    head = f"From: a@x.example\nTo: {to}\nSubject: {{}}\nMIME-Version: 1.0\n"
    return {
        "truncated base64": _mime(head.format("trunc") + 'Content-Type: multipart/mixed; boundary="B"\n',
                                  b"--B\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
                                  b"Content-Disposition: attachment; filename=po.pdf\r\n\r\n" + pdf_b64[: len(pdf_b64) // 2 + 3].encode()),
        "mismatched boundary": _mime(head.format("boundary") + 'Content-Type: multipart/mixed; boundary="AAA"\n',
                                     b"--BBB\r\nContent-Type: text/csv\r\n\r\n" + PO_CSV_EN + b"\r\n--BBB--\r\n"),
        "no closing boundary": _mime(head.format("open") + 'Content-Type: multipart/mixed; boundary="B"\n',
                                     b"--B\r\nContent-Type: text/csv; name=a.csv\r\n\r\n" + PO_CSV_EN),
        "header injection": _mime(head.format("inj\r\nBcc: victim@x.example") +
                                  'Content-Type: multipart/mixed; boundary="B"\n',
                                  b"--B\r\nContent-Type: text/csv\r\nContent-Disposition: attachment; filename=\"a.csv\r\nX-Evil: 1\"\r\n\r\n" + PO_CSV_EN + b"\r\n--B--\r\n"),
        "enormous header": _mime(head.format("big header") + "X-Filler: " + "x" * 2_000_000 + "\n", b"body\r\n"),
        "thousands of parts": _mime(head.format("parts") + 'Content-Type: multipart/mixed; boundary="B"\n',
                                    b"".join(b"--B\r\nContent-Type: text/csv; name=p.csv\r\n\r\nSKU,Qty\r\nA,1\r\n" for _ in range(3000)) + b"--B--\r\n"),
        "nested 300 deep": nested_forward(300, to),
        "tnef bomb": message(sender="a@x.example", to=to, subject="tnef", attachments=[("winmail.dat", "application/ms-tnef", tnef_bomb())]).as_bytes(),
        "zip bomb xlsx": message(sender="a@x.example", to=to, subject="zip", attachments=[("order.xlsx", "application/octet-stream", zip_bomb_xlsx())]).as_bytes(),
        "invalid charset": _mime(head.format("=?x-unknown-777?q?Bestellung?=") + 'Content-Type: text/plain; charset="x-unknown-777"\n', b"\xff\xfe\xfd"),
        "8-bit garbage": b"From: \xff\xfe@\x80\r\nTo: " + to.encode() + b"\r\nSubject: \x00\x01\x02\r\nContent-Type: multipart/mixed; boundary=\xff\r\n\r\n--\xff\r\n\x80\x81\x82\r\n",
        "escaping filenames": message(sender="a@x.example", to=to, subject="names", attachments=[
            ("../../../../tmp/evil.csv", "text/csv", PO_CSV_EN + b"1"), ("/etc/cron.d/x.csv", "text/csv", PO_CSV_EN + b"2"),
            ("..\\..\\windows.csv", "text/csv", PO_CSV_EN + b"3"), ("%2e%2e%2fescape.csv", "text/csv", PO_CSV_EN + b"4")]).as_bytes(),
        "NUL and controls in every header and name": _mime(
            "From: =?utf-8?Q?Eve=00=01?= <eve@x.example>\nTo: =?utf-8?Q?o=00?= <" + to + ">\nSubject: =?utf-8?Q?PO=00=07=1b[31m?=\n"
            "Message-ID: <a=?utf-8?Q?=00?=b@x.example>\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"B\"\n",
            b"--B\r\nContent-Type: text/csv; name*=utf-8''n%00%01%1f.csv\r\nContent-Disposition: attachment; "
            b"filename*=utf-8''po%00%07%0d%0a.csv\r\n\r\n" + PO_CSV_EN + b"\r\n--B--\r\n"),
        "lone surrogates": _mime(
            head.format("=?utf-7?Q?+2AA-?= order") + 'Content-Type: multipart/mixed; boundary="B"\n',
            b"--B\r\nContent-Type: text/csv\r\nContent-Disposition: attachment; filename=\"=?utf-7?Q?+2AA-?=.csv\"\r\n\r\n"
            + PO_CSV_EN + b"\r\n--B--\r\n"),
        "overlong names and ids": _mime(
            head.format(" ".join(["=?utf-8?Q?L=C3=A4nge?="] * 20000)).replace("From: a@x.example", "From: " + "a" * 50000 + "@x.example")
            + "Message-ID: <" + "m" * 20000 + "@x.example>\n" + 'Content-Type: multipart/mixed; boundary="B"\n',
            b"--B\r\nContent-Type: text/csv\r\nContent-Disposition: attachment; filename=\"" + b"n" * 5000 + b".csv\"\r\n\r\n"
            + PO_CSV_EN + b"\r\n--B--\r\n"),
        "empty message": b"",
        "headers only": b"From: a@x.example\r\nTo: " + to.encode() + b"\r\n",
    }
