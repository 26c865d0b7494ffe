"""EDI purchase orders (X12 850, EDIFACT ORDERS), told by content whatever the file name."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from imap_intake.exceptions import OrderParseError
from imap_intake.mime.sniff import sniff
from imap_intake.orders import parse

ISA = "ISA*00*          *00*          *ZZ*ACMEBUYER      *ZZ*SUPPLIERCO     *261201*0930*U*00401*000000123*0*P*>~\n"
X12_850 = (ISA +
    "GS*PO*ACMEBUYER*SUPPLIERCO*20261201*0930*123*X*004010~\n"
    "ST*850*0001~\n"
    "BEG*00*SA*4500098765**20261201~\n"
    "CUR*BY*USD~\n"
    "REF*DP*038~\n"
    "DTM*002*20261215~\n"
    "N1*BY*Acme Retail Inc*92*0042~\n"
    "N1*ST*Acme DC East*92*0099~\n"
    "PO1*1*120*EA*0.85*PE*VP*AB-1*BP*100234*UP*012345678905~\n"
    "PID*F****Cable ties 200mm~\n"
    "PO1*2*12*CS*8.50**BP*100777*VP*AB-7~\n"
    "PID*F****Label rolls~\n"
    "PO1*3*1*EA*250~\n"
    "CTT*3*133~\n"
    "AMT*TT*454.00~\n"
    "SE*16*0001~\n"
    "GE*1*123~\n"
    "IEA*1*000000123~\n")

EDIFACT = (
    "UNA:+,? '"
    "UNB+UNOC:3+4012345000009:14+4098765000002:14+261201:0930+77'"
    "UNH+1+ORDERS:D:01B:UN:EAN010'"
    "BGM+220+PO?+2026?'118+9'"
    "DTM+137:20261201:102'"
    "DTM+2:20261210:102'"
    "CUX+2:EUR:9'"
    "NAD+BY+4012345000009::9++Nordwind Logistik GmbH'"
    "NAD+SU+4098765000002::9'"
    "LIN+1++4006381333931:EN'"
    "PIA+1+ZX-100:SA'"
    "IMD+F++:::Palettenfolie 500mm'"
    "QTY+21:48:PCE'"
    "MOA+203:600,00'"
    "PRI+AAA:12,50'"
    "LIN+2++4006381333948:EN'"
    "IMD+F++:::Umreifungsband 12mm'"
    "QTY+21:10:RO'"
    "PRI+AAA:31'"
    "UNS+S'"
    "MOA+79:910,00'"
    "CNT+2:2'"
    "UNT+22+1'"
    "UNZ+1+77'")


def test_an_x12_850_with_its_header_lines_and_total() -> None:
    order = parse("edi", X12_850.encode())
    assert (order.format, order.order_number, order.order_date, order.currency, order.buyer) == (
        "x12", "4500098765", dt.date(2026, 12, 1), "USD", "Acme Retail Inc")
    assert [(x.sku, x.description, x.quantity, x.unit, x.unit_price, x.amount) for x in order.lines] == [
        ("AB-1", "Cable ties 200mm", Decimal("120"), "EA", Decimal("0.85"), Decimal("102.00")),
        ("AB-7", "Label rolls", Decimal("12"), "CS", Decimal("8.50"), Decimal("102.00")),
        (None, None, Decimal("1"), "EA", Decimal("250"), Decimal("250")),
    ]
    assert order.total == Decimal("454.00") and not order.needs_review, order.review_reason


def test_an_x12_850_without_envelope_and_with_line_breaks_for_terminators() -> None:
    bare = "ST*850*0001\nBEG*00*SA*PO-7890**20250101\nCUR*BY*USD\nPO1*1*10*EA*2.5**VP*SKU-001\nSE*5*0001\n"
    order = parse("edi", bare.encode())
    assert order.order_number == "PO-7890" and [(x.sku, x.quantity, x.amount) for x in order.lines] == [("SKU-001", 10, 25)]


def test_an_edifact_orders_with_decimal_commas_release_characters_and_a_total() -> None:
    order = parse("edi", EDIFACT.encode())
    assert (order.format, order.order_number, order.order_date, order.currency, order.buyer) == (
        "edifact", "PO+2026'118", dt.date(2026, 12, 1), "EUR", "Nordwind Logistik GmbH")
    assert [(x.sku, x.description, x.quantity, x.unit, x.unit_price, x.amount) for x in order.lines] == [
        ("4006381333931", "Palettenfolie 500mm", Decimal("48"), "PCE", Decimal("12.50"), Decimal("600.00")),
        ("4006381333948", "Umreifungsband 12mm", Decimal("10"), "RO", Decimal("31"), Decimal("310")),
    ]
    assert order.total == Decimal("910.00") and not order.needs_review, order.review_reason


def test_edifact_without_una_with_a_203_date_and_no_prices() -> None:
    # The shape of a retail EANCOM order: dates with a time, items by EAN, no prices.
    text = ("UNB+UNOA:4+12345678:8+WBDZDD:ZZ+081012:0255+807'UNH+1+ORDERS:D:96A:UN:EAN008'BGM+220::9+801715918011+9+NA'"
            "DTM+137:201508030000:203'NAD+BY+8711576000012::9'LIN+1++5020436373085:EN'QTY+21:8'LIN+2++5020436373108:EN'"
            "QTY+21:8'UNS+S'UNT+16+1'")
    order = parse("edi", text.encode())
    assert (order.order_number, order.order_date, order.buyer) == ("801715918011", dt.date(2015, 8, 3), "8711576000012")
    assert [(x.sku, x.quantity, x.unit_price) for x in order.lines] == [("5020436373085", 8, None), ("5020436373108", 8, None)]


def test_a_total_that_disagrees_with_the_lines_or_a_second_order_needs_review() -> None:
    wrong = parse("edi", X12_850.replace("AMT*TT*454.00", "AMT*TT*500.00").encode())
    assert wrong.needs_review and "lines add up to 454.00, the order states 500.00" in (wrong.review_reason or "")
    two = X12_850.replace("GE*1*123~", "ST*850*0002~BEG*00*SA*4500098766**20261201~PO1*1*1*EA*1~SE*4*0002~GE*2*123~")
    assert "holds 2 purchase orders" in (parse("edi", two.encode()).review_reason or "")


@pytest.mark.parametrize(("text", "words"), [
    (X12_850.replace("ST*850*0001", "ST*810*0001"), "not an 850 purchase order"),
    (EDIFACT.replace("ORDERS:D:01B", "INVOIC:D:01B"), "not an ORDERS purchase order"),
    ("hello, this is not EDI", "not an EDI interchange"),
])
def test_other_edi_documents_are_refused_with_what_they_are(text: str, words: str) -> None:
    with pytest.raises(OrderParseError, match=words):
        parse("edi", text.encode())


@pytest.mark.parametrize("name", ["order.edi", "PO4500098765.x12", "order.txt", "", "ORDERS.dat"])
def test_edi_is_told_by_its_content_whatever_the_name(name: str) -> None:
    assert sniff(X12_850.encode(), "application/octet-stream", name) == "edi"
    assert sniff(EDIFACT.encode(), "text/plain", name) == "edi"
    assert sniff(b"ISA is a word that starts this letter.\nDear buyer, ...", "text/plain", name) != "edi"
