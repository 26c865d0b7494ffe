"""PDF orders: text via pypdf; order number and date where found, else a document that needs review."""

from __future__ import annotations

import io
import re

from imap_intake.exceptions import OrderParseError
from imap_intake.orders.model import Order, date

MAX_PAGES = 30
NUMBER = re.compile(
    r"(?:purchase\s+order|order|PO|bestellung|bestellnummer|auftrag)\s*(?:number|no\.?|nr\.?|#)?\s*[:#]?\s*"
    r"([A-Z0-9][A-Z0-9\-/]{2,40})",
    re.IGNORECASE,
)
DATE = re.compile(r"(?:date|datum)\s*[:]?\s*(\d{4}-\d{2}-\d{2}|\d{1,2}[./]\d{1,2}[./]\d{2,4})", re.IGNORECASE)


def parse_pdf(data: bytes) -> Order:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise OrderParseError("the PDF is encrypted; ask the sender for an unprotected copy")
        text = "\n".join((page.extract_text() or "") for page in reader.pages[:MAX_PAGES])
    except PdfReadError as exc:
        raise OrderParseError(f"unreadable PDF: {exc}") from exc
    numbers = [m.group(1) for m in NUMBER.finditer(text) if any(ch.isdigit() for ch in m.group(1))]
    dates = [date(m.group(1)) for m in DATE.finditer(text)]
    number = numbers[0] if numbers else None
    found_date = next((d for d in dates if d), None)
    if not text.strip():
        reason = "no text layer (a scan?): needs review"
    elif number is None:
        reason = "no order number found in the text: needs review"
    else:
        reason = "PDF line items are not extracted: check the document"
    return Order(
        format="pdf", order_number=number, order_date=found_date, currency=None, buyer=None, total=None,
        lines=(), needs_review=True, review_reason=reason,
    )
