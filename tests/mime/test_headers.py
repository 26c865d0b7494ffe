"""Header text as real mailers write it: 8-bit bytes, charset aliases, split words, bounded work."""

from __future__ import annotations

import time

import pytest

from devstack.samples import PO_CSV_EN
from imap_intake.mime import headers
from imap_intake.mime.extract import extract


def _escaped(data: bytes) -> str:
    return data.decode("ascii", "surrogateescape")  # what the parser keeps for raw bytes


@pytest.mark.parametrize(("raw", "text"), [
    ("ci\u00eble.txt".encode(), "ci\u00eble.txt"),                         # RFC 6532 UTF-8
    ("ci\u00eble.txt".encode("cp1252"), "ci\u00eble.txt"),                 # legacy Latin-1 / Windows-1252
    ("\u0424\u041d\u0421_\u0420\u041458.zip".encode(), "\u0424\u041d\u0421_\u0420\u041458.zip"),
    (b"=?gb2312?B?" + __import__("base64").b64encode("\u7ba1\u7406.doc".encode("gbk")) + b"?=", "\u7ba1\u7406.doc"),
    (b"=?iso-8859-8-i?Q?=F9=EC=E5=ED?=", "\u05e9\u05dc\u05d5\u05dd"),
    (b"=?utf-8?Q?ci\xc3\xable?=", "ci\u00eble"),                           # raw bytes inside an encoded word
    (b"=?utf-8?B?w6Q=?= =?utf-8?B?w7Y=?=", "\u00e4\u00f6"),               # white space between words dropped
    (b"=?utf-8?B?4oKs?=", "\u20ac"),
    (b"=?utf-8?Q?=E2=82?= =?utf-8?Q?=AC?=", "\u20ac"),                     # a character split across two words
    (b"=?x-unknown?Q?Bestellung?=", "Bestellung"),
    (b"=?NONE?B?VEVTVA=?=", "TEST"),
    (b"plain \x81 byte", "plain \x81 byte"),                                # undefined in cp1252: read as Latin-1
])
def test_decode(raw: bytes, text: str) -> None:
    assert headers.decode(_escaped(raw)) == text


def test_decoding_happens_before_any_length_bound() -> None:
    words = " ".join(["=?utf-8?Q?Bestellung_N=C3=A4chste_Woche?="] * 60)
    decoded = headers.decode(words)
    assert "=?" not in decoded and decoded.startswith("Bestellung N\u00e4chste Woche")


def test_thousands_of_encoded_words_take_linear_time_and_never_recurse() -> None:
    to = ", ".join(f"=?utf-8?q?N=C3=A4me{i}?= <u{i}@example.com>" for i in range(2700))
    raw = f"From: a@b.example\r\nTo: {to}\r\nSubject: {' '.join(['=?utf-8?B?w6Q=?='] * 2700)}\r\n\r\nbody\r\n".encode()
    started = time.process_time()
    result = extract(raw)
    assert len(result.recipients) == 2700 and result.subject == "\u00e4" * 998
    assert time.process_time() - started < 5  # a bound, not a benchmark: quadratic work would take minutes


def test_a_folded_boundary_parameter_still_finds_the_parts() -> None:
    raw = (
        b"From: a@b.example\r\nTo: o@x.example\r\nSubject: folded\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed;\r\n    boundary="----=_NextPart\r\n _000_0002"\r\n\r\n'
        b"------=_NextPart _000_0002\r\nContent-Type: text/csv; name=po.csv\r\n\r\n" + PO_CSV_EN +
        b"\r\n------=_NextPart _000_0002--\r\n"
    )
    assert [a.original_filename for a in extract(raw).attachments] == ["po.csv"]


def test_rfc2231_names_use_the_charset_aliases() -> None:
    name = "\u7ba1\u7406.csv".encode("gbk")
    quoted = "".join(f"%{b:02X}" for b in name)
    raw = (
        b"From: a@b.example\r\nTo: o@x.example\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\nContent-Type: text/csv\r\n'
        b"Content-Disposition: attachment; filename*=gb2312''" + quoted.encode() + b"\r\n\r\n" + PO_CSV_EN + b"\r\n--B--\r\n"
    )
    assert [a.original_filename for a in extract(raw).attachments] == ["\u7ba1\u7406.csv"]
