"""Each format gives an order or a clear error; hostile files never escape as exceptions."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from devstack.samples import CXML_ORDER, PO_CSV_DE, PO_CSV_EN, UBL_ORDER, make_pdf, make_xlsx, po_pdf
from imap_intake.exceptions import OrderParseError
from imap_intake.orders import parse


def test_german_csv_with_semicolons_decimal_comma_and_cp1252() -> None:
    order = parse("csv", PO_CSV_DE)
    assert order.order_number == "4500012345" and order.order_date == dt.date(2026, 11, 3)
    assert order.currency == "EUR" and order.total == Decimal("910.00")
    assert [(line.sku, line.quantity, line.unit_price) for line in order.lines] == [
        ("ZX-100", Decimal("48"), Decimal("12.50")), ("ZX-220", Decimal("10"), Decimal("31.00"))]
    assert order.lines[0].description == "Palettenfolie 500mm"


def test_english_csv_and_utf8_bom() -> None:
    order = parse("csv", b"\xef\xbb\xbf" + PO_CSV_EN)
    assert order.order_number == "PO-7731" and order.total == Decimal("142.00") and len(order.lines) == 2


def test_csv_with_title_rows_above_the_header() -> None:
    order = parse("csv", b"ACME Corp purchase order\n\n" + PO_CSV_EN)
    assert len(order.lines) == 2


def test_csv_missing_columns_is_a_clear_error() -> None:
    with pytest.raises(OrderParseError, match="no header row with a quantity column"):
        parse("csv", b"name,colour\nwidget,blue\n", filename="po.csv")


def test_csv_bad_number_names_the_row() -> None:
    with pytest.raises(OrderParseError, match="row 3"):
        parse("csv", b"SKU,Qty\nA,1\nB,1.2.3\n")


def test_utf16_without_bom_is_explained() -> None:
    with pytest.raises(OrderParseError, match="UTF-16"):
        parse("csv", "SKU,Qty\nA,1\n".encode("utf-16-le") + b"\xff\xfe\x00\xd8")


def test_xlsx() -> None:
    data = make_xlsx([["Order No", "Date", "Item No", "Description", "Quantity", "Price"],
                      ["X-1", dt.datetime(2026, 11, 1), "A-1", "Widget", 3, 2.5]])
    order = parse("xlsx", data)
    assert order.format == "xlsx" and order.order_number == "X-1" and order.lines[0].quantity == Decimal("3")


def test_huge_sheet_is_refused() -> None:
    rows = [["SKU", "Qty"]] + [[f"A{i}", 1] for i in range(50_002)]
    with pytest.raises(OrderParseError, match="more than 50000 rows"):
        parse("xlsx", make_xlsx(rows))


def test_ubl_order() -> None:
    order = parse("xml", UBL_ORDER)
    assert (order.format, order.order_number, order.currency, order.buyer) == ("ubl", "UBL-34127", "EUR", "Hafenkontor AG")
    assert order.lines[0].sku == "HPT-WS-2" and order.lines[0].unit == "EA" and order.total == Decimal("455.00")


def test_cxml_order_with_doctype() -> None:
    order = parse("xml", CXML_ORDER)
    assert (order.format, order.order_number, order.order_date, order.currency) == ("cxml", "CX-9001", dt.date(2026, 11, 6), "USD")
    assert order.lines[0].sku == "GL-44" and order.lines[0].quantity == Decimal("10")


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE Order [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Order xmlns="urn:oasis:names:specification:ubl:schema:xsd:Order-2"><ID>&xxe;</ID></Order>"""
LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><lolz>&lol3;</lolz>"""


@pytest.mark.parametrize("payload", [XXE, LAUGHS])
def test_xml_entities_are_refused(payload: bytes) -> None:
    with pytest.raises(OrderParseError, match="XML refused: it declares entities"):
        parse("xml", payload)


@pytest.mark.parametrize(("data", "message"), [(b"<a><b></a>", "not well-formed"), (b"<Invoice/>", "neither a UBL 2.1 Order nor a cXML")])
def test_other_xml_is_a_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(OrderParseError, match=message):
        parse("xml", data)


def test_pdf_number_date_lines_and_total() -> None:
    order = parse("pdf", po_pdf("4500012345"))
    assert order.order_number == "4500012345" and order.order_date == dt.date(2026, 11, 3) and not order.needs_review
    assert [(x.sku, x.quantity, x.unit, x.unit_price, x.amount) for x in order.lines] == [
        ("ZX-100", 48, "ST", Decimal("12.50"), Decimal("600.00")), ("ZX-220", 10, "RL", Decimal("31.00"), Decimal("310.00"))]
    assert order.total == Decimal("910.00") and order.currency == "EUR" and order.buyer == "Nordwind Logistik GmbH"


def test_pdf_without_number_needs_review() -> None:
    order = parse("pdf", make_pdf(["Hello, here is some text"]))
    assert order.order_number is None and "no order number" in (order.review_reason or "")


@pytest.mark.parametrize("kind", ["pdf", "xlsx", "csv", "xml"])
def test_garbage_gives_an_order_parse_error(kind: str) -> None:
    with pytest.raises(OrderParseError):
        parse(kind, b"%PDF-1.4 garbage \x00\xff" * 3 if kind == "pdf" else b"PK\x03\x04\x00\x00garbage" if kind == "xlsx" else b"\x00\x01\x02")
