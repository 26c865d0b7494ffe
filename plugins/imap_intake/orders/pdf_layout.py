"""Order lines out of positioned PDF text. Pure: fragments (x, y, text, size) in, rows out.

No fixed coordinates and no per-sender template: the lines table is found by its header row (label
synonyms in English and German), its columns are taken from where those labels stand, and each row
below is read into the column whose span it falls in, until a totals row (Total, Summe, ...) or the
end of the page. A row is an order line when it has a quantity and a price or an amount; a row of
text only continues the description above it. Numbers are read in either notation (1,234.56 or
1.234,56, with or without a currency sign).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

#: Header labels (lower case, without punctuation) per column, English and German.
LABELS: dict[str, tuple[str, ...]] = {
    "position": ("pos", "position", "line", "item", "nr", "lfd nr", "no", "regel"),
    "sku": ("sku", "item no", "item number", "part no", "part number", "article", "article no", "product code",
            "material", "artikel", "artikelnr", "artikel nr", "art nr", "artnr", "materialnr", "material nr", "code",
            "your item no", "ihre artikelnr", "catalog no", "mfr part", "artikelnummer", "référence", "ref", "réf",
            "código", "codice", "item code", "product no", "produktnummer", "bestellnummer lieferant"),
    "description": ("description", "item description", "product", "bezeichnung", "beschreibung", "artikelbezeichnung",
                    "text", "leistung", "article description", "designation", "product description", "omschrijving",
                    "désignation", "descripción", "descrizione", "libellé", "produkt"),
    "quantity": ("qty", "quantity", "qty ordered", "menge", "anzahl", "bestellmenge", "stk", "stück", "stueck", "ordered",
                 "aantal", "quantité", "qté", "cantidad", "quantità", "qtà", "antal", "ilość"),
    "unit": ("unit", "uom", "um", "einheit", "me", "mengeneinheit", "u m", "eenheid", "unité", "unidad"),
    "unit_price": ("unit price", "price", "price each", "unit cost", "net price", "rate", "einzelpreis", "preis", "ep",
                   "stückpreis", "stueckpreis", "e preis", "preis je einheit", "nettopreis", "price per unit", "each",
                   "vk preis", "prijs", "prijs per stuk", "stukprijs", "prix unitaire", "prix", "pu", "p u", "precio",
                   "precio unitario", "prezzo", "prezzo unitario", "listenpreis"),
    "other": ("disc", "disc %", "discount", "rabatt", "rabatt %", "taxes", "tax", "tax %", "vat", "vat %", "mwst", "ust",
              "steuer", "btw", "tva", "iva", "delivery date", "liefertermin", "lieferdatum", "date", "due date", "need by",
              "ship date", "cost center", "kostenstelle", "account", "konto", "weight", "gewicht", "hs code",
              "zolltarifnummer", "origin", "ursprung"),
    "amount": ("amount", "total", "line total", "extended price", "ext price", "net amount", "value", "gesamtpreis",
               "gesamt", "betrag", "summe", "gp", "gesamtbetrag", "positionswert", "total price", "extension", "net value",
               "zeilenbetrag", "totaal", "bedrag", "montant", "montant ht", "total ht", "importe", "importo", "prijs incl btw",
               "nettobetrag", "nettowert"),
}
TOTAL_WORDS = ("total", "subtotal", "sub total", "grand total", "order total", "net total", "total amount", "total net",
               "summe", "gesamtsumme", "gesamtbetrag", "zwischensumme", "nettobetrag", "endbetrag", "netto", "warenwert",
               "rechnungsbetrag", "auftragssumme", "bestellsumme", "total eur", "total usd")
QUANTITY_UNIT = re.compile(r"^\s*(\d[\d.,]*)\s*([A-Za-zÄÖÜäöüß.]{1,12})\s*$")  # "1.00kg", "15.00 g", "48 ST"
NUMBER = re.compile(r"^[-+(]?(?:[$€£]|eur|usd|gbp|chf)?\s*[-+]?\d[\d.,' \u00a0]*(?:\s*(?:[$€£%]|eur|usd|gbp|chf))?[)]?$", re.I)


def advance(text: str) -> float:
    """A text's width in ems, from Helvetica-like metrics by character class (when the PDF's own font
    widths are not at hand): near enough to tell a space between words from a gap between columns."""
    width = 0.0
    for char in text:
        if char.isdigit() or char in "$€£#_?":
            width += 0.556
        elif char in " .,:;'!|":
            width += 0.278
        elif char in "-()[]/\\*\"":
            width += 0.333
        elif char in "fijlrtI":
            width += 0.26
        elif char in "mwMW%@":
            width += 0.86
        elif char.isupper():
            width += 0.68
        else:
            width += 0.53
    return width


@dataclass(frozen=True)
class Fragment:
    x: float
    y: float
    text: str
    size: float = 10.0
    width: float | None = None  # from the font's widths, when the PDF has them

    @property
    def right(self) -> float:
        return self.x + (self.width if self.width is not None else advance(self.text.strip()) * self.size)


@dataclass(frozen=True)
class Cell:
    x0: float
    x1: float
    text: str


@dataclass(frozen=True)
class TableRow:
    sku: str | None
    description: str | None
    quantity: Decimal | None
    unit: str | None
    unit_price: Decimal | None
    amount: Decimal | None


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[.:#/\-_()%]", " ", text.lower())).strip()


def lines_of(fragments: Iterable[Fragment]) -> list[list[Cell]]:
    """Fragments grouped into lines (top to bottom), each a list of cells: fragments closer than a
    character or two are one cell."""
    rows: list[list[Fragment]] = []
    for fragment in sorted((f for f in fragments if f.text.strip()), key=lambda f: (-f.y, f.x)):
        if rows and abs(rows[-1][0].y - fragment.y) <= max(2.0, fragment.size * 0.35):
            rows[-1].append(fragment)
        else:
            rows.append([fragment])
    result = []
    for row in rows:
        cells: list[Cell] = []
        for fragment in sorted(row, key=lambda f: f.x):
            gap = fragment.size * 0.45  # about two spaces: more is the next column
            if cells and fragment.x - cells[-1].x1 <= gap:
                last = cells[-1]
                joiner = "" if fragment.x - last.x1 <= fragment.size * 0.15 else " "
                cells[-1] = Cell(last.x0, max(last.x1, fragment.right), (last.text + joiner + fragment.text.strip()).strip())
            else:
                cells.append(Cell(fragment.x, fragment.right, fragment.text.strip()))
        result.append(cells)
    return result


def number(text: str, *, decimal_comma: bool | None = None) -> Decimal | None:
    """1,234.56 / 1.234,56 / 1 234,56 / € 12,50 / 12.50 EUR / (3.00) -> Decimal; anything else None.
    ``decimal_comma``: the document's notation (``uses_decimal_comma``), for "1.000" and "1,000"."""
    raw = text.strip()
    if not raw or not NUMBER.match(raw):
        return None
    negative = raw.startswith(("-", "(")) or raw.endswith("-")
    digits = re.sub(r"[^\d.,]", "", raw)
    if not digits or not digits[0].isdigit():
        return None
    last_dot, last_comma = digits.rfind("."), digits.rfind(",")
    if last_dot >= 0 and last_comma >= 0:
        mark = "." if last_dot > last_comma else ","
    elif last_comma >= 0 or last_dot >= 0:
        sep = "," if last_comma >= 0 else "."
        after = len(digits) - digits.rfind(sep) - 1
        if digits.count(sep) > 1:
            mark = ""  # 1.234.567: thousands
        elif after != 3 or digits.startswith("0" + sep):
            mark = sep  # 12,50 / 0.125
        elif decimal_comma is not None:
            mark = sep if (sep == ",") == decimal_comma else ""
        else:
            mark = ""  # 1,000 / 1.000 with nothing else to go by: a thousand
    else:
        mark = ""
    for sep in {".", ","} - {mark}:
        digits = digits.replace(sep, "")
    digits = digits.replace(",", ".")
    try:
        value = Decimal(digits)
    except InvalidOperation:
        return None
    return -value if negative else value


def _column_of(text: str) -> str | None:
    key = _norm(text)
    for column, labels in LABELS.items():
        if key in labels:
            return column
    return None


def _split(cell: Cell) -> list[Cell]:
    """A header cell of labels run together ("Menge ME", "Qty Unit Price"): its labels, each with its
    share of the cell's width; the longest label first ("unit price" before "unit")."""
    words = cell.text.split()
    width = (cell.x1 - cell.x0) / max(1, len(cell.text))
    parts: list[Cell] = []
    i, offset = 0, 0
    while i < len(words):
        for size in (3, 2, 1):
            chunk = " ".join(words[i:i + size])
            if len(words[i:i + size]) == size and _column_of(chunk):
                break
        else:
            size, chunk = 1, words[i]
        start = cell.text.find(chunk, offset)
        parts.append(Cell(cell.x0 + start * width, cell.x0 + (start + len(chunk)) * width, chunk))
        offset, i = start + len(chunk), i + size
    return parts


def _header(cells: Sequence[Cell]) -> dict[str, Cell] | None:
    found: dict[str, Cell] = {}
    expanded = [part for cell in cells for part in ([cell] if _column_of(cell.text) else _split(cell))]
    others = 0
    for cell in expanded:
        column = _column_of(cell.text)
        if column is None or column == "other":
            others += 1
            found[f"other{others}"] = cell  # a column of its own, read and ignored: its values never leak next door
            continue
        if column in found and column == "amount" and "unit_price" not in found:
            found["unit_price"] = found.pop("amount")
        found.setdefault(column, cell)
    numeric = {"quantity", "unit_price", "amount"} & set(found)
    known = [c for c in found if not c.startswith("other")]
    if "quantity" in found and len(numeric) >= 2 and len(known) >= 3 and len(known) >= len(found) / 2:
        return found
    return None


def _is_total(cells: Sequence[Cell]) -> bool:
    first = _norm(" ".join(c.text for c in cells[:2]))
    return any(first.startswith(word) for word in TOTAL_WORDS)


def _assign(cells: Sequence[Cell], header: dict[str, Cell]) -> dict[str, str]:
    """Each cell to the header column it overlaps most, else the nearest one by centre."""
    spans = sorted(header.items(), key=lambda item: item[1].x0)
    bounds = []
    for i, (column, cell) in enumerate(spans):
        left = cell.x0 if i == 0 else (spans[i - 1][1].x1 + cell.x0) / 2
        right = spans[i + 1][1].x0 if i + 1 < len(spans) else float("inf")
        bounds.append((column, min(left, cell.x0), max(cell.x1, (cell.x1 + right) / 2) if right != float("inf") else right))
    out: dict[str, str] = {}
    for cell in cells:
        centre = (cell.x0 + cell.x1) / 2
        target = next((column for column, left, right in bounds if left - 1 <= centre <= right), None)
        if target is None:
            target = min(bounds, key=lambda b: min(abs(centre - b[1]), abs(centre - b[2])))[0]
        out[target] = (out.get(target, "") + " " + cell.text).strip()
    return out


def table_rows(lines: Sequence[Sequence[Cell]], *, decimal_comma: bool | None = None) -> tuple[list[TableRow], list[str]]:
    """The order lines under each lines-table header, and the text lines after the last table (the totals)."""
    rows: list[TableRow] = []
    header: dict[str, Cell] | None = None
    after: list[str] = []
    for cells in lines:
        found = _header(cells)
        if found is not None:
            header = found  # a table, or the same table continued on the next page
            after = []
            continue
        if header is None:
            continue
        text = " ".join(c.text for c in cells)
        if _is_total(cells):
            after.append(text)
            if rows and not _norm(text).startswith(("sub", "zwischen")):
                header = None  # the order's total: the table is over (a section's subtotal is not)
            continue
        values = _assign(cells, header)
        unit_from_quantity = None
        glued = QUANTITY_UNIT.match(values.get("quantity", ""))
        if glued and number(values["quantity"], decimal_comma=decimal_comma) is None:
            values["quantity"], unit_from_quantity = glued.group(1), glued.group(2)
        quantity = number(values.get("quantity", ""), decimal_comma=decimal_comma)
        price = number(values.get("unit_price", ""), decimal_comma=decimal_comma)
        amount = number(values.get("amount", ""), decimal_comma=decimal_comma)
        if quantity is not None and (price is not None or amount is not None):
            description = values.get("description") or None
            sku = values.get("sku") or None
            if sku and "description" not in header and description is None and " " in sku:
                # one column for both ("Artikel"): a leading code (a digit in it) is the SKU, else all of it describes
                code, rest = sku.split(" ", 1)
                sku, description = (code, rest) if any(ch.isdigit() for ch in code) else (None, sku)
            rows.append(TableRow(sku, description, quantity, values.get("unit") or unit_from_quantity, price, amount))
        elif rows and not any(number(v) is not None for v in values.values()) and values.get("description"):
            last = rows[-1]
            joined = f"{last.description} {values['description']}".strip() if last.description else values["description"]
            rows[-1] = TableRow(last.sku, joined, last.quantity, last.unit, last.unit_price, last.amount)
    return rows, after


def stated_totals(lines: Sequence[str], *, decimal_comma: bool | None = None) -> list[tuple[str, Decimal]]:
    """(label, amount) of each totals line: the last number on it."""
    found = []
    for line in lines:
        tokens = re.findall(r"\d[\d.,']*\d|\d", line)
        values = [v for v in (number(t, decimal_comma=decimal_comma) for t in tokens) if v is not None]
        if values:
            found.append((_norm(line.split(":")[0])[:40], values[-1]))
    return found
