"""PDF order lines: the corpus of layouts scored, scans and disagreeing totals flagged, numbers in both notations."""

from __future__ import annotations

from decimal import Decimal

import pytest

from devstack.pdf_orders import Column, order_pdf, pdf_pages
from imap_intake.orders import parse
from imap_intake.orders.pdf import parse_pdf
from imap_intake.orders.pdf_layout import number
from tests.orders.pdf_corpus import score


def test_the_corpus_reads_right_on_every_layout() -> None:
    for layout, s in score(parse_pdf).items():
        assert s.header_right >= 0.95 * s.documents, (layout, s)  # number, date and line count
        assert s.lines_right >= 0.95 * s.lines, (layout, s)  # quantity, unit price and amount of each line
        assert s.wrong_unflagged == 0, (layout, s)  # nothing wrong without needs_review


def test_a_scan_without_text_needs_review() -> None:
    order = parse("pdf", pdf_pages(["0 0 m 100 100 l S\n"]))  # a drawing, no text: what a scanner's PDF is to us
    assert order.needs_review and "no text layer" in (order.review_reason or "") and order.lines == ()


def test_lines_that_disagree_with_the_stated_total_are_flagged() -> None:
    columns = [Column("Item", 40), Column("Description", 100), Column("Qty", 380, right=True), Column("Price", 460, right=True),
               Column("Amount", 550, right=True)]
    pdf = order_pdf(["PURCHASE ORDER", "PO Number: 77001", "Date: 2026-11-02"], columns,
                    [["A-1", "Widget", "2", "10.00", "20.00"], ["A-2", "Gadget", "1", "5.00", "5.00"]], [("Total", "30.00")])
    order = parse("pdf", pdf)
    assert len(order.lines) == 2 and order.needs_review and "the lines add up to 25.00" in (order.review_reason or "")


def test_a_document_without_a_lines_table_says_so() -> None:
    order = parse("pdf", order_pdf(["PURCHASE ORDER", "PO Number: 77002"], [Column("Remarks", 40)], [["please call us"]], []))
    assert order.order_number == "77002" and order.needs_review and "no lines table" in (order.review_reason or "")


@pytest.mark.parametrize(("text", "comma", "value"), [
    ("1,234.56", None, "1234.56"), ("1.234,56", None, "1234.56"), ("12,50", None, "12.50"), ("€ 12,50", None, "12.50"),
    ("12.50 EUR", None, "12.50"), ("(3.00)", None, "-3.00"), ("1 234,56", None, "1234.56"), ("0,125", None, "0.125"),
    ("1.000", True, "1000"), ("1.000", False, "1.000"), ("1,000", False, "1000"), ("$1,500.00", None, "1500.00"),
])
def test_numbers_in_either_notation(text: str, comma: bool | None, value: str) -> None:
    assert number(text, decimal_comma=comma) == Decimal(value)


@pytest.mark.parametrize("text", ["ZX-100", "2026-11-02", "Palettenfolie", ""])
def test_what_is_not_a_number(text: str) -> None:
    assert number(text) is None
