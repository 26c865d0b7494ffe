"""The survey's pure core: BODYSTRUCTURE outlines and the verdicts a poll would reach."""

from __future__ import annotations

import datetime as dt

import pytest
from imapclient.response_parser import parse_fetch_response

from imap_intake.survey import MessageOutline, PartOutline, judge, kind_of, outline_parts
from tests.conftest import make_workspace

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def structure(text: bytes) -> object:
    return parse_fetch_response([b"1 (UID 7 BODYSTRUCTURE " + text + b")"])[7][b"BODYSTRUCTURE"]


def test_attachments_named_in_disposition_or_type_and_forwarded_messages_opened() -> None:
    body = structure(
        b'(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 12 1 NIL NIL NIL NIL)'
        b'("APPLICATION" "PDF" ("NAME" "po.pdf") NIL NIL "BASE64" 4000 NIL ("attachment" ("FILENAME" "po.pdf")) NIL NIL)'
        b'("IMAGE" "PNG" NIL "<logo>" NIL "BASE64" 300 NIL ("inline" NIL) NIL NIL)'
        b'("APPLICATION" "OCTET-STREAM" ("NAME*" "utf-8\'\'Bestellung%20M%C3%BCller.csv") NIL NIL "BASE64" 80 NIL NIL NIL NIL)'
        b'("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 900 (NIL "fwd" NIL NIL NIL NIL NIL NIL NIL NIL) '
        b'("APPLICATION" "VND.OPENXMLFORMATS-OFFICEDOCUMENT.SPREADSHEETML.SHEET" NIL NIL NIL "BASE64" 500 NIL '
        b'("attachment" ("FILENAME" "=?utf-8?q?Auftrag=5F1.xlsx?=")) NIL NIL) 20 NIL NIL NIL NIL)'
        b'("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 900 (NIL "fwd 2" NIL NIL NIL NIL NIL NIL NIL NIL) '
        b'(("TEXT" "PLAIN" NIL NIL NIL "7BIT" 10 1 NIL NIL NIL NIL)'
        b'("APPLICATION" "OCTET-STREAM" ("NAME" "PO-7731.csv") NIL NIL "BASE64" 80 NIL ("attachment" ("FILENAME" "PO-7731.csv")) NIL NIL)'
        b' "MIXED" ("BOUNDARY" "c") NIL NIL NIL) 20 NIL NIL NIL NIL)'
        b' "MIXED" ("BOUNDARY" "b") NIL NIL NIL)')
    parts = outline_parts(body)
    assert [(p.filename, p.kind) for p in parts] == [("po.pdf", "pdf"), ("Bestellung Müller.csv", "csv"), ("Auftrag_1.xlsx", "xlsx"), ("PO-7731.csv", "csv")]
    assert parts[0].decoded_size == 3000


def test_a_deep_structure_is_walked_without_recursion() -> None:
    leaf = ("APPLICATION", "PDF", ("NAME", "x.pdf"), None, None, "BASE64", 10)
    node: object = leaf
    for _ in range(5000):
        node = ([node], "MIXED")
    assert outline_parts(node) == ()  # deeper than MAX_DEPTH: not opened, and no RecursionError


@pytest.mark.parametrize(("declared", "name", "kind"), [
    ("application/octet-stream", "ORDER.PDF", "pdf"), ("application/ms-tnef", "winmail.dat", "tnef"),
    ("application/octet-stream", "", "unknown"), ("text/plain", "notes.txt", "unknown"), ("text/plain", "notes.md", "md"), ("application/edi-x12", "po.edi", "edi"),
])
def test_kinds_from_type_and_name(declared: str, name: str, kind: str) -> None:
    assert kind_of(declared, name) == kind


def outline(*parts: PartOutline, size: int = 5000, to: tuple[str, ...] = ("orders@shop.example",), sender: str = "b@acme.example",
            when: dt.datetime = NOW) -> MessageOutline:
    return MessageOutline(1, when, size, parts, sender, to)


PDF = PartOutline("po.pdf", "application/pdf", 4000, "base64")


@pytest.mark.parametrize(("overrides", "message", "verdict"), [
    ({}, outline(PDF), "would_import"),
    ({"start_date": dt.date(2026, 12, 2)}, outline(PDF), "before_start_date"),
    ({"max_message_mb": 0.001}, outline(PDF), "message_too_large"),
    ({"recipients": ("sales@shop.example",)}, outline(PDF), "not_addressed"),
    ({"recipients": ("*@shop.example",)}, outline(PDF), "would_import"),
    ({}, outline(), "no_attachment"),
    ({"accepted_types": frozenset({"csv"})}, outline(PDF), "type_not_accepted"),
    ({"accepted_types": frozenset({"csv"})}, outline(PartOutline("winmail.dat", "application/ms-tnef", 900)), "maybe"),
    ({"max_attachment_mb": 0.001}, outline(PDF), "attachment_too_large"),
    ({"default_supplier": None}, outline(PDF), "no_supplier"),
])
def test_verdicts_follow_the_polls_order(overrides: dict[str, object], message: MessageOutline, verdict: str) -> None:
    assert judge(make_workspace("w", **overrides), message)[0] == verdict
