"""How a second order with the same supplier and number relates to the first: pure."""

from __future__ import annotations

from decimal import Decimal

from imap_intake.orders.relation import POSSIBLE_DUPLICATE, REVISION, line_key, relation

A = [line_key("AB-1", "Cable ties", Decimal("1000"), Decimal("0.04")), line_key("AB-7", "Labels", Decimal("12"), Decimal("8.50"))]


def test_the_same_lines_in_another_order_and_notation_are_a_possible_duplicate() -> None:
    again = [line_key("ab-7", None, Decimal("12.000"), Decimal("8.5")), line_key(" AB-1 ", None, Decimal("1E3"), Decimal("0.040"))]
    assert relation(A, again) == POSSIBLE_DUPLICATE


def test_lines_that_cannot_be_compared_are_a_possible_duplicate_unless_totals_differ() -> None:
    assert relation(A, []) == POSSIBLE_DUPLICATE  # a PDF whose lines were not read
    assert relation([], A, earlier_total=Decimal("142.00"), new_total=Decimal("142")) == POSSIBLE_DUPLICATE
    assert relation([], A, earlier_total=Decimal("142.00"), new_total=Decimal("150")) == REVISION


def test_a_changed_quantity_price_or_item_is_a_revision() -> None:
    assert relation(A, [A[0], line_key("AB-7", None, Decimal("24"), Decimal("8.50"))]) == REVISION
    assert relation(A, [A[0], line_key("AB-7", None, Decimal("12"), Decimal("9"))]) == REVISION
    assert relation(A, [A[0]]) == REVISION
