"""CSV and XLSX orders: one row per line, headers in English or German, decimal comma detected."""

from __future__ import annotations

import codecs
import csv
import io
import re
import zipfile
from collections.abc import Iterable, Sequence
from decimal import Decimal

from imap_intake.exceptions import OrderParseError
from imap_intake.orders.model import Order, OrderLine, date, decimal

MAX_ROWS = 50_000
MAX_XLSX_UNPACKED = 200 * 1024 * 1024
ALIASES: dict[str, tuple[str, ...]] = {
    "sku": ("sku", "item", "item no", "item number", "article", "article no", "part number", "product code",
            "artikel", "artikelnummer", "artikel-nr", "art-nr", "art nr", "material", "materialnummer"),
    "description": ("description", "item description", "product", "name", "beschreibung", "bezeichnung",
                    "artikelbezeichnung", "text"),
    "quantity": ("qty", "quantity", "menge", "anzahl", "bestellmenge", "qty ordered"),
    "unit": ("unit", "uom", "unit of measure", "einheit", "me", "mengeneinheit"),
    "unit_price": ("unit price", "price", "net price", "preis", "einzelpreis", "stuckpreis", "stückpreis",
                   "e-preis", "nettopreis"),
    "amount": ("amount", "line total", "total", "extended price", "betrag", "gesamtpreis", "gesamt", "summe",
               "positionswert"),
    "order_number": ("po", "po number", "po no", "order number", "order no", "purchase order", "bestellnummer",
                     "bestell-nr", "bestellung", "auftragsnummer"),
    "order_date": ("order date", "date", "po date", "bestelldatum", "datum"),
    "currency": ("currency", "waehrung", "währung", "cur"),
}


def _key(header: object) -> str:
    text = str(header or "").strip().lower().replace("_", " ").replace(".", "").replace("#", " no")
    return re.sub(r"\s+", " ", text).strip()


def _columns(headers: Sequence[object]) -> dict[str, int]:
    found: dict[str, int] = {}
    for index, header in enumerate(headers):
        key = _key(header)
        for field, aliases in ALIASES.items():
            if key in aliases and field not in found:
                found[field] = index
    return found


def _decode(data: bytes) -> str:
    for bom, encoding in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return data.decode(encoding)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if data.count(b"\x00") > len(data) // 4:
        raise OrderParseError("the file looks like UTF-16 without a byte-order mark; save it as UTF-8")
    return data.decode("cp1252", errors="strict") if _cp1252_ok(data) else data.decode("latin-1")


def _cp1252_ok(data: bytes) -> bool:
    try:
        data.decode("cp1252")
    except UnicodeDecodeError:
        return False
    return True


def rows_to_order(rows: Iterable[Sequence[object]], *, fmt: str, decimal_comma: bool = False) -> Order:
    iterator = iter(rows)
    headers: Sequence[object] | None = None
    columns: dict[str, int] = {}
    for _ in range(20):  # a title block may sit above the header row
        candidate = next(iterator, None)
        if candidate is None:
            break
        columns = _columns(candidate)
        if "quantity" in columns and ("sku" in columns or "description" in columns):
            headers = candidate
            break
    if headers is None:
        raise OrderParseError(
            "no header row with a quantity column (qty, quantity, menge) and an item column "
            "(sku, article, artikelnummer, description, bezeichnung) in the first 20 rows"
        )

    def cell(row: Sequence[object], field: str) -> object:
        index = columns.get(field)
        return row[index] if index is not None and index < len(row) else None

    lines: list[OrderLine] = []
    number = order_date = currency = None
    for count, row in enumerate(iterator, start=1):
        if count > MAX_ROWS:
            raise OrderParseError(f"more than {MAX_ROWS} rows; split the order or import it by hand")
        if not any(str(v).strip() for v in row if v is not None):
            continue
        sku, description = cell(row, "sku"), cell(row, "description")
        if not (sku or description):
            continue
        try:
            quantity = decimal(cell(row, "quantity"), decimal_comma=decimal_comma)
            unit_price = decimal(cell(row, "unit_price"), decimal_comma=decimal_comma)
            amount = decimal(cell(row, "amount"), decimal_comma=decimal_comma)
        except OrderParseError as exc:
            raise OrderParseError(f"row {count + 1}: {exc}") from exc
        number = number or (str(cell(row, "order_number")).strip() or None if cell(row, "order_number") else None)
        order_date = order_date or date(cell(row, "order_date"))
        currency = currency or (str(cell(row, "currency")).strip().upper()[:3] or None if cell(row, "currency") else None)
        lines.append(
            OrderLine(len(lines) + 1, str(sku).strip() if sku else None, str(description).strip() if description else None,
                      quantity, str(cell(row, "unit") or "").strip() or None, unit_price, amount)
        )
    if not lines:
        raise OrderParseError("the header row was found but no order lines follow it")
    amounts = [line.amount for line in lines if line.amount is not None]
    total = sum(amounts, Decimal(0)) if amounts else None
    return Order(fmt, number, order_date, currency, None, total, tuple(lines),
                 needs_review=number is None, review_reason=None if number else "no order number column")


def parse_csv(data: bytes) -> Order:
    text = _decode(data)
    sample = text[:8192]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, delimiters=";,\t|")
    except csv.Error:
        dialect = csv.excel
    delimiter = getattr(dialect, "delimiter", ",")
    decimal_comma = delimiter != "," and bool(re.search(r"\d,\d{1,2}(?:\D|$)", sample))
    reader = csv.reader(io.StringIO(text), dialect)
    try:
        return rows_to_order(reader, fmt="csv", decimal_comma=decimal_comma)
    except csv.Error as exc:
        raise OrderParseError(f"broken CSV: {exc}") from exc


def parse_xlsx(data: bytes) -> Order:
    import openpyxl

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile as exc:
        raise OrderParseError("not a readable XLSX file (broken zip)") from exc
    if unpacked > MAX_XLSX_UNPACKED:
        raise OrderParseError(f"the workbook unpacks to {unpacked} bytes (limit {MAX_XLSX_UNPACKED}); refusing")
    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        sheet = workbook.worksheets[0]
        return rows_to_order(sheet.iter_rows(values_only=True), fmt="xlsx")
    finally:
        workbook.close()
