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
from imap_intake.orders.model import Order, OrderLine, date, decimal, uses_decimal_comma

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


TOTAL_ROW = re.compile(r"^\s*(?:sub\s*total|total|grand total|order total|summe|zwischensumme|gesamt(?:summe|betrag)?|"
                       r"netto(?:betrag)?|mwst|ust|vat|tax|endbetrag|totaal)\b", re.IGNORECASE)


def _preamble_fields(rows: Sequence[Sequence[object]]) -> dict[str, str]:
    """Order number, date and currency written above the table: "PO Number: 4500012345" in one cell,
    or a label cell followed by its value."""
    found: dict[str, str] = {}
    for row in rows:
        cells = [str(v).strip() for v in row if v is not None and str(v).strip()]
        for i, text in enumerate(cells):
            label, sep, value = text.partition(":")
            field = _columns([label])
            name = next(iter(field), None)
            if name not in {"order_number", "order_date", "currency"} or name in found:
                continue
            value = value.strip() if sep and value.strip() else (cells[i + 1] if i + 1 < len(cells) else "")
            if value:
                found[name] = value
    return found


def rows_to_order(rows: Iterable[Sequence[object]], *, fmt: str, decimal_comma: bool = False) -> Order:
    iterator = iter(rows)
    headers: Sequence[object] | None = None
    columns: dict[str, int] = {}
    preamble: list[Sequence[object]] = []
    for _ in range(30):  # a title block may sit above the header row
        candidate = next(iterator, None)
        if candidate is None:
            break
        columns = _columns(candidate)
        if "quantity" in columns and ("sku" in columns or "description" in columns):
            headers = candidate
            break
        preamble.append(candidate)
    if headers is None:
        raise OrderParseError(
            "no header row with a quantity column (qty, quantity, menge) and an item column "
            "(sku, article, artikelnummer, description, bezeichnung) in the first 30 rows"
        )

    def cell(row: Sequence[object], field: str) -> object:
        index = columns.get(field)
        return row[index] if index is not None and index < len(row) else None

    lines: list[OrderLine] = []
    stated: Decimal | None = None
    doubts: list[str] = []
    fields = _preamble_fields(preamble)
    number = fields.get("order_number")
    order_date = date(fields["order_date"]) if "order_date" in fields else None
    currency = fields.get("currency", "").upper()[:3] or None
    for count, row in enumerate(iterator, start=1):
        if count > MAX_ROWS:
            raise OrderParseError(f"more than {MAX_ROWS} rows; split the order or import it by hand")
        texts = [str(v).strip() for v in row if v is not None and str(v).strip()]
        if not texts:
            continue
        if TOTAL_ROW.match(texts[0]) or (len(texts) > 1 and TOTAL_ROW.match(texts[1]) and not cell(row, "quantity")):
            values = [decimal(v, decimal_comma=decimal_comma) for v in texts[1:] if _numeric(v)]
            if values and re.match(r"\s*(?:total|grand|order total|summe|gesamt|netto|endbetrag|totaal)", texts[0], re.I):
                stated = stated if stated is not None else values[-1]
            continue  # a totals row is not an order line
        sku, description = cell(row, "sku"), cell(row, "description")
        if not (sku or description):
            continue
        try:
            quantity = decimal(cell(row, "quantity"), decimal_comma=decimal_comma)
            unit_price = decimal(cell(row, "unit_price"), decimal_comma=decimal_comma)
            amount = decimal(cell(row, "amount"), decimal_comma=decimal_comma)
        except OrderParseError as exc:
            raise OrderParseError(f"row {count + 1}: {exc}") from exc
        if quantity is None and unit_price is None and amount is None:
            continue  # a section title or a remark between the lines
        number = number or (str(cell(row, "order_number")).strip() or None if cell(row, "order_number") else None)
        order_date = order_date or date(cell(row, "order_date"))
        currency = currency or (str(cell(row, "currency")).strip().upper()[:3] or None if cell(row, "currency") else None)
        if quantity is not None and unit_price is not None and amount is not None and abs(quantity * unit_price - amount) > Decimal("0.02"):
            doubts.append(f"line {len(lines) + 1}: {quantity} x {unit_price} is not {amount}")
        lines.append(
            OrderLine(len(lines) + 1, str(sku).strip() if sku else None, str(description).strip() if description else None,
                      quantity, str(cell(row, "unit") or "").strip() or None, unit_price, amount)
        )
    if not lines:
        raise OrderParseError("the header row was found but no order lines follow it")
    amounts = [line.amount if line.amount is not None else (line.quantity * line.unit_price
               if line.quantity is not None and line.unit_price is not None else None) for line in lines]
    known = [a for a in amounts if a is not None]
    total = sum(known, Decimal(0)) if len(known) == len(amounts) else None
    if stated is not None and total is not None and abs(stated - total) > Decimal("0.02"):
        doubts.append(f"the lines add up to {total}, the totals row states {stated}")
        total = stated
    elif stated is not None and total is None:
        total = stated
    if number is None:
        doubts.insert(0, "no order number (neither a column nor a 'PO Number:' above the table)")
    return Order(fmt, number, order_date, currency, None, total, tuple(lines),
                 needs_review=bool(doubts), review_reason="; ".join(doubts)[:1000] or None)


def _numeric(text: str) -> bool:
    return bool(re.fullmatch(r"[-+]?[$€£]?\s?\d[\d.,' ]*\s?(?:[$€£%]|EUR|USD|GBP|CHF)?", text.strip(), re.IGNORECASE))


def _delimiter(sample: str) -> str:
    """The delimiter most lines share with the same count (the table's rows), outside quotes; ';' and
    tab before ',' on a tie, since a comma may be a decimal mark. csv.Sniffer gives up on a title block."""
    from collections import Counter

    lines = [re.sub(r'"[^"]*"', "", line) for line in sample.splitlines()[:60] if line.strip()]
    best, best_rows = ",", 0
    for candidate in (";", "\t", "|", ","):
        counts = Counter(line.count(candidate) for line in lines if line.count(candidate))
        if counts:
            _count, rows = counts.most_common(1)[0]
            if rows > best_rows:
                best, best_rows = candidate, rows
    return best


def parse_csv(data: bytes) -> Order:
    text = _decode(data)
    sample = text[:8192]
    delimiter = _delimiter(sample)
    decimal_comma = delimiter != "," and bool(uses_decimal_comma([sample]))
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, quotechar='"', skipinitialspace=False)
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
        first_error: OrderParseError | None = None
        for sheet in workbook.worksheets[:20]:  # the sheet with the order lines: a cover sheet may come first
            try:
                return rows_to_order(sheet.iter_rows(values_only=True), fmt="xlsx")
            except OrderParseError as exc:
                first_error = first_error or OrderParseError(f"sheet '{sheet.title}': {exc}")
        raise first_error or OrderParseError("the workbook has no sheets")
    finally:
        workbook.close()
