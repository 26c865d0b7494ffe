"""PDF orders: positioned text via pypdf, header fields by label, lines by ``pdf_layout``.

An order whose lines were found and whose stated total matches their sum is imported as it is.
Everything doubtful is imported with ``needs_review`` and the reason: no text layer (a scan), no
order number, no lines table, lines whose quantity x price is not their amount, or a total that
disagrees with the lines.
"""

from __future__ import annotations

import io
import math
import re
from decimal import Decimal
from typing import Any

from imap_intake.exceptions import OrderParseError
from imap_intake.orders.model import Order, OrderLine, date, uses_decimal_comma
from imap_intake.orders.pdf_layout import Fragment, lines_of, stated_totals, table_rows

MAX_PAGES = 30
NUMBER = re.compile(  # on one line: "Purchase Order No: 4500012345", "Bestellung 4500012345", "Order #: PO-7731"
    r"(?:purchase[ \t]+order|order|PO|bestellung|bestellnummer|bestell-nr\.?|auftrag|auftragsnummer)[ \t]*"
    r"(?:number|no\.?|nr\.?|#|nummer)?[ \t]*[:#]?[ \t]*(?=[A-Z0-9\-/]*\d)([A-Z0-9][A-Z0-9\-/]{2,40})",
    re.IGNORECASE,
)
DATE = re.compile(r"(?:order\s+date|po\s+date|bestelldatum|date|datum)\s*[:]?\s*(\d{4}-\d{2}-\d{2}|\d{1,2}[./]\d{1,2}[./]\d{2,4})",
                  re.IGNORECASE)
BUYER = re.compile(r"(?:buyer|bill\s+to|ordered\s+by|besteller|käufer|auftraggeber)\s*:\s*(.+)", re.IGNORECASE)
CURRENCY = re.compile(r"(?<![A-Z])(EUR|USD|GBP|CHF|SEK|NOK|DKK|PLN|CZK|JPY|CAD|AUD)(?![A-Z])|([€$£])")
SYMBOLS = {"€": "EUR", "$": "USD", "£": "GBP"}


def _fragments(reader: Any) -> list[list[Fragment]]:
    """Per page, each text fragment at its position (device space), from pypdf's text visitor."""
    pages = []
    for page in reader.pages[:MAX_PAGES]:
        found: list[Fragment] = []

        def visit(text: str, cm: list[float], tm: list[float], _font: Any, size: float, found: list[Fragment] = found) -> None:
            if not text or not text.strip():
                return
            x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
            y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
            scale = math.hypot(tm[0], tm[1]) * math.hypot(cm[0], cm[1]) or 1.0
            for n, part in enumerate(text.split("\n")):  # a fragment holding line breaks: one line each
                if part.strip():
                    found.append(Fragment(x, y - n * (size or 10) * scale * 1.2, part, (size or 10) * scale))

        page.extract_text(visitor_text=visit)
        pages.append(found)
    return pages


def parse_pdf(data: bytes) -> Order:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise OrderParseError("the PDF is encrypted; ask the sender for an unprotected copy")
        pages = _fragments(reader)
    except PdfReadError as exc:
        raise OrderParseError(f"unreadable PDF: {exc}") from exc
    lines = [cells for page in pages for cells in lines_of(page)]
    texts = [" ".join(cell.text for cell in cells) for cells in lines]
    text = "\n".join(texts)
    if not text.strip():
        return Order(format="pdf", order_number=None, order_date=None, currency=None, buyer=None, total=None, lines=(),
                     needs_review=True, review_reason="no text layer (a scan?): needs review")
    comma = uses_decimal_comma(texts)
    rows, after = table_rows(lines, decimal_comma=comma)
    order_lines = []
    for n, row in enumerate(rows, 1):
        amount = row.amount
        if amount is None and row.quantity is not None and row.unit_price is not None:
            amount = row.quantity * row.unit_price
        order_lines.append(OrderLine(n, row.sku, row.description, row.quantity, row.unit, row.unit_price, amount))
    if not after:  # totals written beside the table's last rows, or in a box of their own
        after = [t for t in texts if re.match(r"\s*(?:grand\s+)?(?:total|summe|gesamt|endbetrag|nettobetrag)", t, re.I)]
    totals = stated_totals(after, decimal_comma=comma)
    number = next((m.group(1) for m in NUMBER.finditer(text)), None)
    found_date = next((d for d in (date(m.group(1)) for m in DATE.finditer(text)) if d), None)
    buyer = next((m.group(1).strip()[:200] for m in BUYER.finditer(text)), None)
    currency = _currency(text)
    total, reasons = _check(order_lines, totals)
    if number is None:
        reasons.insert(0, "no order number found in the text")
    return Order(format="pdf", order_number=number, order_date=found_date, currency=currency, buyer=buyer, total=total,
                 lines=tuple(order_lines), needs_review=bool(reasons), review_reason="; ".join(reasons)[:1000] or None)


def _currency(text: str) -> str | None:
    counts: dict[str, int] = {}
    for match in CURRENCY.finditer(text):
        code = match.group(1) or SYMBOLS[match.group(2)]
        counts[code] = counts.get(code, 0) + 1
    return max(counts, key=lambda c: counts[c]) if counts else None


def _check(lines: list[OrderLine], totals: list[tuple[str, Decimal]]) -> tuple[Decimal | None, list[str]]:
    """The order's total (the stated one that matches its lines, else the last stated), and what is doubtful."""
    reasons: list[str] = []
    if not lines:
        reasons.append("no lines table found (a header with quantity and price or amount columns): check the document")
        return (totals[-1][1] if totals else None), reasons
    for line in lines:
        if line.quantity is not None and line.unit_price is not None and line.amount is not None:
            expected = line.quantity * line.unit_price
            if abs(expected - line.amount) > max(Decimal("0.02"), abs(line.amount) * Decimal("0.001")):
                if abs(expected / 100 - line.amount) > Decimal("0.02") and abs(expected / 1000 - line.amount) > Decimal("0.02"):
                    reasons.append(f"line {line.line_no}: {line.quantity} x {line.unit_price} is not {line.amount}")
    if any(line.amount is None for line in lines):
        reasons.append("a line without an amount or a price")
        return (totals[-1][1] if totals else None), reasons
    summed = sum((line.amount for line in lines if line.amount is not None), Decimal(0))
    matching = [value for _label, value in totals if abs(value - summed) <= Decimal("0.02")]
    if matching:
        return matching[0], reasons
    if totals:
        # A gross total with tax on top of the lines is normal: accept it when a net total or subtotal matches,
        # which is the case above; otherwise the document and its lines disagree.
        stated = ", ".join(f"{label or 'total'} {value}" for label, value in totals)
        reasons.append(f"the lines add up to {summed}, the document states {stated}")
        return totals[-1][1], reasons
    reasons.append(f"no stated total to check the lines against (they add up to {summed})")
    return summed, reasons
