from __future__ import annotations

import pytest

from devstack.samples import PO_CSV_DE, UBL_ORDER, make_xlsx, po_pdf
from imap_intake.mime.sniff import sniff
from imap_intake.mime.tnef import TnefFile, pack


@pytest.mark.parametrize(
    ("data", "declared", "name", "kind"),
    [
        (po_pdf("1"), "application/octet-stream", "x.bin", "pdf"),
        (po_pdf("1"), "text/plain", "", "pdf"),
        (make_xlsx([["a"]]), "application/octet-stream", "x", "xlsx"),
        (UBL_ORDER, "application/octet-stream", "order", "xml"),
        (PO_CSV_DE, "text/csv", "b.csv", "csv"),
        (PO_CSV_DE, "text/plain", "b.txt", "csv"),
        (b"hello there", "text/plain", "note.txt", "text"),
        (pack([TnefFile("a", b"b")]), "application/ms-tnef", "winmail.dat", "tnef"),
        (b"\x89PNG\r\n\x1a\n....", "application/octet-stream", "x.pdf", "image"),
        (b"\x00\x01\x02\x03" * 10, "application/pdf", "fake.pdf", "unknown"),
        (b"PK\x03\x04broken", "application/zip", "x.xlsx", "unknown"),
    ],
)
def test_bytes_win_over_names(data: bytes, declared: str, name: str, kind: str) -> None:
    assert sniff(data, declared, name) == kind


def test_prose_with_commas_in_a_txt_is_not_an_order() -> None:
    prose = b"Hi Bob, thanks for the call today.\nRegards, Alice from purchasing.\n"
    assert sniff(prose, "text/plain", "note.txt") == "text"
    assert sniff(b"Dear supplier, please see the attached order, as agreed.\n", "text/plain", "x.txt") == "text"


def test_a_real_table_in_a_txt_is_csv() -> None:
    assert sniff(b"sku;qty;price\nA-1;10;4.50\nB-2;3;12.00\n", "text/plain", "order.txt") == "csv"
    assert sniff(b"sku\tqty\nA-1\t10\n", "text/plain", "order.txt") == "csv"
    assert sniff(b"sku,qty,price\nA-1,10\n", "text/plain", "order.txt") == "text"  # inconsistent columns
