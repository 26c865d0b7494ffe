"""The same order twice: how a new order relates to an earlier one with its supplier and number. Pure.

Buyers resend orders, send one order as a PDF and as a CSV, and send corrected versions under the
same number. Such an order is never silently a second one: it is linked to the first order with that
supplier and number, as a *possible duplicate* when nothing tells them apart (the same lines, or lines
that cannot be compared because one side has none, such as a PDF whose lines were not read) or as a
*revision* when quantities, prices, items or the stated total differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

POSSIBLE_DUPLICATE = "possible_duplicate"
REVISION = "revision"
LineKey = tuple[str, Decimal | None, Decimal | None]


def line_key(sku: str | None, description: str | None, quantity: Decimal | None, unit_price: Decimal | None) -> LineKey:
    item = " ".join(str(sku or description or "").lower().split())
    return item, _number(quantity), _number(unit_price)


def _number(value: Decimal | None) -> Decimal | None:
    return None if value is None else Decimal(value).normalize()


def relation(earlier: Sequence[LineKey], new: Sequence[LineKey], *, earlier_total: Decimal | None = None,
             new_total: Decimal | None = None) -> str:
    """``possible_duplicate`` or ``revision`` (see the module docstring)."""
    if earlier_total is not None and new_total is not None and _number(earlier_total) != _number(new_total):
        return REVISION
    if not earlier or not new:
        return POSSIBLE_DUPLICATE
    return POSSIBLE_DUPLICATE if sorted(earlier, key=repr) == sorted(new, key=repr) else REVISION
