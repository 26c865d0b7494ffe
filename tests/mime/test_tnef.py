"""winmail.dat as Outlook writes it: data and long names in MAPI properties, code pages, damage."""

from __future__ import annotations

import struct

from devstack.samples import PO_CSV_EN, message, po_pdf
from imap_intake.mime.extract import extract
from imap_intake.mime.sniff import sniff
from imap_intake.mime.tnef import IMESSAGE_IID, MAGIC, TnefFile, mapi_properties, pack, unpack


def _mail(tnef: bytes) -> bytes:
    return message(sender="a@b.example", to="o@x.example", subject="s", attachments=[("winmail.dat", "application/ms-tnef", tnef)]).as_bytes()


def test_data_in_pr_attach_data_bin_and_the_long_name_win_over_the_83_title() -> None:
    pdf = po_pdf("213")
    stream = pack([TnefFile("Bestellung März 2026 final.pdf", pdf), TnefFile("positions-list.csv", PO_CSV_EN)], long_names=True)
    assert b"BESTEL~1.PDF" in stream and b"\x00%PDF" not in stream.split(b"BESTEL~1.PDF")[0]
    contents = unpack(stream, max_total=10**8)
    assert [(f.name, f.data) for f in contents.files] == [("Bestellung März 2026 final.pdf", pdf), ("positions-list.csv", PO_CSV_EN)]
    result = extract(_mail(stream))
    assert [a.original_filename for a in result.attachments] == ["Bestellung März 2026 final.pdf", "positions-list.csv"]


def test_8bit_titles_are_decoded_with_the_message_code_page() -> None:
    stream = pack([TnefFile("Заказ.csv", PO_CSV_EN)], codepage=1251)
    assert [f.name for f in unpack(stream, max_total=10**6).files] == ["Заказ.csv"]


def test_a_truncated_attribute_keeps_every_attachment_completed_before_it() -> None:
    stream = pack([TnefFile("one.csv", PO_CSV_EN), TnefFile("two.pdf", po_pdf("2")), TnefFile("three.csv", PO_CSV_EN + b"x")])
    damaged = stream[:-40]
    contents = unpack(damaged, max_total=10**8)
    assert [(f.name, f.problem is None) for f in contents.files] == [("one.csv", True), ("two.pdf", True), ("three.csv", False)]
    result = extract(_mail(damaged))
    assert [a.original_filename for a in result.attachments] == ["one.csv", "two.pdf"]
    assert [(s.original_filename, "truncated" in s.reason) for s in result.skipped] == [("three.csv", True)]


def test_a_winmail_dat_starting_with_a_small_pdf_is_unpacked_not_stored_as_a_pdf() -> None:
    stream = pack([TnefFile("a.pdf", po_pdf("1")), TnefFile("b.csv", PO_CSV_EN)])
    assert b"%PDF-" in stream[:1024]
    assert sniff(stream, "application/octet-stream", "winmail.dat") == "tnef"
    assert [a.original_filename for a in extract(_mail(stream)).attachments] == ["a.pdf", "b.csv"]


def test_an_embedded_outlook_message_is_opened_in_turn() -> None:
    inner = pack([TnefFile("inner.csv", PO_CSV_EN)])
    props = struct.pack("<I", 1) + struct.pack("<HHII", 0x000D, 0x3701, 1, 16 + len(inner)) + IMESSAGE_IID + inner
    props += b"\x00" * (-len(props) % 4)

    def attribute(level: int, attr: int, value: bytes) -> bytes:
        return struct.pack("<BII", level, attr, len(value)) + value + struct.pack("<H", sum(value) & 0xFFFF)

    outer = struct.pack("<IH", MAGIC, 1) + attribute(2, 0x00069002, b"\x00" * 16) + attribute(2, 0x00069005, props)
    assert [a.original_filename for a in extract(_mail(outer)).attachments] == ["inner.csv"]


def test_parts_without_data_and_stray_bytes_are_recorded_not_dropped() -> None:
    def attribute(level: int, attr: int, value: bytes) -> bytes:
        return struct.pack("<BII", level, attr, len(value)) + value + struct.pack("<H", sum(value) & 0xFFFF)

    stream = struct.pack("<IH", MAGIC, 1) + attribute(2, 0x00069002, b"\x00" * 16) + attribute(2, 0x00018010, b"LINK.URL\x00") + b"\x01\x02"
    result = extract(_mail(stream))
    reasons = {s.original_filename: s.reason for s in result.skipped}
    assert "carries no data" in reasons["LINK.URL"] and "stray byte" in reasons["winmail.dat"]


def test_mapi_properties_stop_cleanly_on_a_short_list() -> None:
    good = struct.pack("<I", 2) + struct.pack("<HHII", 0x001F, 0x3707, 1, 6) + "ab\x00".encode("utf-16-le") + b"\x00\x00"
    assert mapi_properties(good, "cp1252") == {0x3707: (0x001F, "ab")}
    assert mapi_properties(good[:-3], "cp1252") == {}
