"""EDI purchase orders: ANSI X12 850 and UN/EDIFACT ORDERS (D.96A and later). Pure.

Large buyers send EDI by mail as well as over AS2: a file named ``.edi``, ``.x12``, ``.txt`` or
nothing at all. Both are told by their content (``is_x12``, ``is_edifact``), never by the name.

* **X12 850**: the separators come from the ISA header (element separator after ``ISA``, component
  separator in ISA16, the segment terminator right after it). BEG03 is the order number, BEG05 its
  date, CUR02 the currency, N1*BY the buyer, PO1 a line (quantity, unit, unit price, and the first
  vendor/buyer/UPC part number of its qualifier pairs), PID*F its description, AMT*TT or CTT the total.
* **EDIFACT ORDERS**: tokenized by pydifact (UNA service string advice, release characters); BGM's
  document number, DTM+137 (or 4) the order date, CUX the currency, NAD+BY the buyer, LIN/PIA the item
  number, IMD its description, QTY+21 (ordered) or +1, PRI (AAA net, else AAB gross), MOA+203 the line
  amount, MOA 79/86/128/39 after UNS the total. The UNA decimal mark is honoured (``12,50``).

An interchange holding several orders yields the first and says so (``needs_review``); lines whose
amounts disagree with quantity x price, or a stated total that disagrees with the lines, are flagged.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from imap_intake.exceptions import OrderParseError
from imap_intake.orders.model import Order, OrderLine

MAX_SEGMENTS = 200_000
X12_PART_QUALIFIERS = ("VP", "VN", "BP", "IN", "UP", "UK", "EN", "SK", "MG", "PI")


def _text(data: bytes) -> str:
    for encoding in ("utf-8", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def is_x12(data: bytes) -> bool:
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n")
    return (head.startswith(b"ISA") and len(head) > 105 and head[3:4] not in (b"", b" ") and not head[3:4].isalnum()) \
        or head.startswith((b"ST*850*", b"GS*PO*"))


def is_edifact(data: bytes) -> bool:
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"UNA") or head.startswith((b"UNB+", b"UNH+"))


def _decimal(value: str | None, decimal_mark: str = ".") -> Decimal | None:
    text = (value or "").strip()
    if not text:
        return None
    if decimal_mark != ".":
        text = text.replace(decimal_mark, ".")
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def _date(value: str | None, fmt: str = "102") -> dt.date | None:
    """CCYYMMDD (X12; EDIFACT format 102), CCYYMMDDHHMM(SS) (203, 204) or YYMMDD (101)."""
    text = (value or "").strip()
    try:
        if fmt == "101" or len(text) == 6:
            return dt.datetime.strptime(text, "%y%m%d").date()
        if len(text) >= 8 and text[:8].isdigit():
            return dt.datetime.strptime(text[:8], "%Y%m%d").date()
    except ValueError:
        return None
    return None


def _checks(order_number: str | None, lines: list[OrderLine], total: Decimal | None, extra: list[str]) -> tuple[bool, str | None]:
    reasons = list(extra)
    if not order_number:
        reasons.append("no order number")
    if not lines:
        reasons.append("no order lines")
    for line in lines:
        if line.quantity is not None and line.unit_price is not None and line.amount is not None:
            if abs(line.quantity * line.unit_price - line.amount) > Decimal("0.01") * max(Decimal(1), abs(line.amount) / 100):
                reasons.append(f"line {line.line_no}: {line.quantity} x {line.unit_price} is not {line.amount}")
    amounts = [line.amount for line in lines if line.amount is not None]
    if total is not None and amounts and len(amounts) == len(lines):
        summed = sum(amounts, Decimal(0))
        if abs(summed - total) > Decimal("0.01"):
            reasons.append(f"lines add up to {summed}, the order states {total}")
    return (bool(reasons), "; ".join(reasons)[:1000] or None)


# -- X12 850 ------------------------------------------------------------------------------------------

def _x12_segments(text: str) -> list[list[str]]:
    text = text.lstrip("\ufeff \t\r\n")
    if text.startswith("ISA") and len(text) > 105:
        element = text[3]
        isa = text.split(element, 16)
        if len(isa) < 17 or len(isa[16]) < 2:
            raise OrderParseError("X12: the ISA header is cut short; its separators cannot be read")
        terminator = isa[16][1]
    else:
        element, terminator = "*", "~" if "~" in text else "\n"
    segments = []
    for raw in text.split(terminator):
        raw = raw.strip("\r\n ")
        if raw:
            segments.append(raw.split(element))
        if len(segments) > MAX_SEGMENTS:
            raise OrderParseError(f"X12: more than {MAX_SEGMENTS} segments")
    return segments


def _get(segment: Sequence[str], index: int) -> str:
    return segment[index].strip() if len(segment) > index else ""


def parse_x12(data: bytes) -> Order:
    segments = _x12_segments(_text(data))
    starts = [i for i, s in enumerate(segments) if s[0] == "ST"]
    kinds = {_get(segments[i], 1) for i in starts}
    if starts and "850" not in kinds:
        raise OrderParseError(f"X12 transaction set(s) {', '.join(sorted(kinds))}, not an 850 purchase order")
    orders = [i for i in starts if _get(segments[i], 1) == "850"]
    begin = orders[0] if orders else 0
    end = next((i for i in range(begin + 1, len(segments)) if segments[i][0] == "SE"), len(segments))
    body = segments[begin:end]
    number = date_ = currency = buyer = None
    total: Decimal | None = None
    lines: list[OrderLine] = []
    for segment in body:
        tag = segment[0]
        if tag == "BEG":
            number, date_ = _get(segment, 3) or None, _date(_get(segment, 5))
        elif tag == "CUR" and not currency:
            currency = _get(segment, 2) or None
        elif tag == "N1" and _get(segment, 1) == "BY":
            buyer = _get(segment, 2) or None
        elif tag == "PO1":
            pairs = {_get(segment, i): _get(segment, i + 1) for i in range(6, len(segment) - 1, 2)}
            sku = next((pairs[q] for q in X12_PART_QUALIFIERS if pairs.get(q)), None)
            quantity, price = _decimal(_get(segment, 2)), _decimal(_get(segment, 4))
            lines.append(OrderLine(line_no=len(lines) + 1, sku=sku, description=None, quantity=quantity,
                                   unit=_get(segment, 3) or None, unit_price=price,
                                   amount=quantity * price if quantity is not None and price is not None else None))
        elif tag == "PID" and lines and lines[-1].description is None and _get(segment, 5):
            last = lines[-1]
            lines[-1] = OrderLine(last.line_no, last.sku, _get(segment, 5), last.quantity, last.unit, last.unit_price, last.amount)
        elif tag == "AMT" and _get(segment, 1) in {"TT", "GV", "1"}:
            total = _decimal(_get(segment, 2))
    if number is None and not lines:
        raise OrderParseError("X12 850 without a BEG segment or PO1 lines: not a purchase order")
    extra = [f"the interchange holds {len(orders)} purchase orders; the first was imported"] if len(orders) > 1 else []
    review, reason = _checks(number, lines, total, extra)
    return Order(format="x12", order_number=number, order_date=date_, currency=currency, buyer=buyer, total=total,
                 lines=tuple(lines), needs_review=review, review_reason=reason)


# -- EDIFACT ORDERS -----------------------------------------------------------------------------------

def _component(element: Any, index: int = 0) -> str:
    if isinstance(element, list):
        return str(element[index]).strip() if len(element) > index and element[index] is not None else ""
    return str(element or "").strip() if index == 0 else ""


def _element(segment: Any, index: int) -> Any:
    elements = segment.elements
    return elements[index] if len(elements) > index else ""


def _edifact_segments(text: str) -> tuple[list[Any], str]:
    from pydifact.control import Characters
    from pydifact.parser import Parser

    stripped = text.lstrip("\ufeff \t\r\n")
    characters = Characters.from_str(stripped[3:9]) if stripped.startswith("UNA") and len(stripped) >= 9 else Characters()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydifact warns about directories it ships no validation data for
        try:
            segments = list(Parser().parse(stripped))
        except Exception as exc:  # noqa: BLE001 - the tokenizer's own errors, translated
            raise OrderParseError(f"EDIFACT: not readable ({type(exc).__name__}: {exc})") from exc
    if len(segments) > MAX_SEGMENTS:
        raise OrderParseError(f"EDIFACT: more than {MAX_SEGMENTS} segments")
    return segments, characters.decimal_point or "."


def parse_edifact(data: bytes) -> Order:
    segments, mark = _edifact_segments(_text(data))
    heads = [i for i, s in enumerate(segments) if s.tag == "UNH"]
    types = {_component(_element(segments[i], 1)) for i in heads}
    if heads and "ORDERS" not in types:
        raise OrderParseError(f"EDIFACT message type(s) {', '.join(sorted(types))}, not an ORDERS purchase order")
    orders = [i for i in heads if _component(_element(segments[i], 1)) == "ORDERS"]
    begin = orders[0] if orders else 0
    end = next((i for i in range(begin + 1, len(segments)) if segments[i].tag == "UNT"), len(segments))
    number = currency = buyer = None
    order_date: dt.date | None = None
    total: Decimal | None = None
    lines: list[dict[str, Any]] = []
    summary = False
    for segment in segments[begin:end]:
        tag = segment.tag
        if tag == "BGM":
            number = _component(_element(segment, 1)) or None
        elif tag == "DTM" and not lines and _component(_element(segment, 0)) in {"137", "4"} and order_date is None:
            order_date = _date(_component(_element(segment, 0), 1), _component(_element(segment, 0), 2) or "102")
        elif tag == "CUX" and not currency:
            currency = _component(_element(segment, 0), 1) or None
        elif tag == "NAD" and _component(_element(segment, 0)) == "BY":
            name = _element(segment, 3)
            buyer = " ".join(p for p in (name if isinstance(name, list) else [name]) if p) or _component(_element(segment, 1)) or None
        elif tag == "LIN":
            lines.append({"sku": _component(_element(segment, 2)) or None})
        elif tag == "PIA" and lines and not lines[-1].get("sku"):
            lines[-1]["sku"] = _component(_element(segment, 1)) or None
        elif tag == "IMD" and lines and not lines[-1].get("description"):
            lines[-1]["description"] = _component(_element(segment, 2), 3) or _component(_element(segment, 2), 4) or None
        elif tag == "QTY" and lines and _component(_element(segment, 0)) in {"21", "1", "47"} and "quantity" not in lines[-1]:
            lines[-1]["quantity"] = _decimal(_component(_element(segment, 0), 1), mark)
            lines[-1]["unit"] = _component(_element(segment, 0), 2) or None
        elif tag == "PRI" and lines and (_component(_element(segment, 0)) == "AAA" or "unit_price" not in lines[-1]):
            lines[-1]["unit_price"] = _decimal(_component(_element(segment, 0), 1), mark)
        elif tag == "MOA":
            qualifier, value = _component(_element(segment, 0)), _decimal(_component(_element(segment, 0), 1), mark)
            if lines and not summary and qualifier in {"203", "66"}:
                lines[-1]["amount"] = value
            elif (summary or not lines) and qualifier in {"79", "86", "128", "39", "77"} and total is None:
                total = value
        elif tag == "UNS":
            summary = True
    if number is None and not lines:
        raise OrderParseError("EDIFACT ORDERS without a BGM segment or LIN lines: not a purchase order")
    order_lines = []
    for n, line in enumerate(lines, 1):
        quantity, price = line.get("quantity"), line.get("unit_price")
        amount = line.get("amount")
        if amount is None and quantity is not None and price is not None:
            amount = quantity * price
        order_lines.append(OrderLine(n, line.get("sku"), line.get("description"), quantity, line.get("unit"), price, amount))
    extra = [f"the interchange holds {len(orders)} ORDERS messages; the first was imported"] if len(orders) > 1 else []
    review, reason = _checks(number, order_lines, total, extra)
    return Order(format="edifact", order_number=number, order_date=order_date, currency=currency, buyer=buyer, total=total,
                 lines=tuple(order_lines), needs_review=review, review_reason=reason)


def parse_edi(data: bytes) -> Order:
    if is_x12(data):
        return parse_x12(data)
    if is_edifact(data):
        return parse_edifact(data)
    raise OrderParseError("not an EDI interchange: neither X12 (ISA/ST) nor EDIFACT (UNA/UNB/UNH)")
