"""The order a parser produces."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from imap_intake.exceptions import OrderParseError


@dataclass(frozen=True)
class OrderLine:
    line_no: int
    sku: str | None
    description: str | None
    quantity: Decimal | None
    unit: str | None = None
    unit_price: Decimal | None = None
    amount: Decimal | None = None


@dataclass(frozen=True)
class Order:
    format: str
    order_number: str | None
    order_date: dt.date | None
    currency: str | None
    buyer: str | None
    total: Decimal | None
    lines: tuple[OrderLine, ...]
    needs_review: bool = False
    review_reason: str | None = None


def decimal(text: object, *, decimal_comma: bool = False) -> Decimal | None:
    """'1.234,56' (decimal comma) or '1,234.56' -> Decimal; blank -> None."""
    if text is None:
        return None
    if isinstance(text, (int, float, Decimal)) and not isinstance(text, bool):
        return Decimal(str(text))
    value = re.sub(r"[^\d,.\-]", "", str(text))
    if not value or value in {"-", ".", ","}:
        return None
    if decimal_comma:
        value = value.replace(".", "").replace(",", ".")
    else:
        value = value.replace(",", "")
    try:
        return Decimal(value)
    except InvalidOperation as exc:
        raise OrderParseError(f"{text!r} is not a number") from exc


_DATE_FORMATS = ("%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%y", "%Y%m%d")


def date(text: object) -> dt.date | None:
    if text is None or text == "":
        return None
    if isinstance(text, dt.datetime):
        return text.date()
    if isinstance(text, dt.date):
        return text
    value = str(text).strip()[:32]
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(value[:10] if fmt == "%Y-%m-%d" else value, fmt).date()
        except ValueError:
            continue
    return None


def uses_decimal_comma(texts: Iterable[str]) -> bool | None:
    """Whether a document writes 12,50 (True) or 12.50 (False), by its amounts with two decimals."""
    joined = " ".join(texts)
    commas = len(re.findall(r"\d,\d{2}(?!\d)", joined))
    dots = len(re.findall(r"\d\.\d{2}(?!\d)", joined))
    return None if commas == dots else commas > dots
