"""Pure purchase-order parsers: attachment bytes in, an ``Order`` out, or ``OrderParseError``."""

from __future__ import annotations

from collections.abc import Callable

from imap_intake.exceptions import OrderParseError
from imap_intake.orders.edi import parse_edi
from imap_intake.orders.model import Order, OrderLine
from imap_intake.orders.pdf import parse_pdf
from imap_intake.orders.tabular import parse_csv, parse_xlsx
from imap_intake.orders.xml_order import parse_xml

PARSERS: dict[str, Callable[[bytes], Order]] = {
    "csv": parse_csv,
    "xlsx": parse_xlsx,
    "xml": parse_xml,
    "pdf": parse_pdf,
    "edi": parse_edi,
}


def parse(kind: str, data: bytes, *, filename: str = "") -> Order:
    """Parse one attachment. Every failure, foreseen or not, becomes an ``OrderParseError``."""
    parser = PARSERS.get(kind)
    if parser is None:
        raise OrderParseError(f"{filename or 'attachment'}: no parser for type '{kind}'")
    try:
        return parser(data)
    except OrderParseError as exc:
        raise OrderParseError(f"{filename or 'attachment'}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - third-party parsers raise anything on hostile input
        raise OrderParseError(f"{filename or 'attachment'}: unreadable {kind}: {type(exc).__name__}: {exc}"[:1000]) from exc


__all__ = ["Order", "OrderLine", "PARSERS", "parse"]
