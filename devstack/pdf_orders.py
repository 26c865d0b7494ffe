"""Purchase-order PDFs as ERPs lay them out: header fields, a lines table at positions of its own,
totals. Text is placed cell by cell (numbers right-aligned), as real generators do, so a parser
has to find the table from its header row, not from a fixed template.

Used by the demo mailbox (``po_pdf``) and by the PDF corpus of tests/orders/pdf_corpus.py.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

FONT_SIZE = 9.0
#: Helvetica's advance widths (AFM, 1/1000 em) for what the corpus prints; others 556.
HELVETICA = {" ": 278, ".": 278, ",": 278, ":": 278, "-": 333, "/": 278, "(": 333, ")": 333, "%": 889, "#": 556, "$": 556,
             "€": 556, **dict.fromkeys("0123456789", 556), "A": 667, "B": 667, "C": 722, "D": 722, "E": 667, "F": 611,
             "G": 778, "H": 722, "I": 278, "K": 667, "L": 556, "M": 833, "N": 722, "O": 778, "P": 667, "R": 722, "S": 667,
             "T": 611, "U": 722, "X": 667, "Z": 611, "a": 556, "b": 556, "c": 500, "d": 556, "e": 556, "f": 278, "g": 556,
             "h": 556, "i": 222, "k": 500, "l": 222, "m": 833, "n": 556, "o": 556, "p": 556, "r": 333, "s": 500, "t": 278,
             "u": 556, "v": 500, "w": 722, "x": 500, "y": 500, "z": 500}


@dataclass(frozen=True)
class Column:
    title: str
    x: float  # left edge, or right edge when ``right``
    right: bool = False


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _width(text: str, size: float) -> float:
    return sum(HELVETICA.get(c, 556) for c in text) / 1000 * size


def _text(x: float, y: float, text: str, *, size: float = FONT_SIZE, right: bool = False, words: bool = False) -> str:
    """One cell; ``words``: each word placed on its own, as many report writers emit text."""
    if right:
        x -= _width(text, size)
    if words and " " in text.strip():
        out, at = "", x
        for word in text.split(" "):
            if word:
                out += _text(at, y, word, size=size)
            at += _width(word + " ", size)
        return out
    data = text.encode("cp1252", "replace").decode("latin-1")
    return f"BT /F1 {size:g} Tf 1 0 0 1 {x:.1f} {y:.1f} Tm ({_esc(data)}) Tj ET\n"


def pdf_pages(pages: Sequence[str]) -> bytes:
    """A PDF of content streams (one per page), Helvetica with WinAnsiEncoding."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", ""]
    kids = []
    for content in pages:
        page_no = len(objects) + 1
        kids.append(f"{page_no} 0 R")
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents {page_no + 1} 0 R "
                       "/Resources << /Font << /F1 FONT 0 R >> >> >>")
        objects.append(f"<< /Length {len(content.encode('latin-1'))} >>\nstream\n{content}\nendstream")
    font_no = len(objects) + 1
    objects.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    return write_pdf([o.replace("FONT 0 R", f"{font_no} 0 R") for o in objects])


def write_pdf(objects: Sequence[str]) -> bytes:
    """Numbered objects (1 is the catalog), the cross-reference table and the trailer."""
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1"))
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def order_pdf(header: Sequence[str], columns: Sequence[Column], rows: Sequence[Sequence[str]], totals: Sequence[tuple[str, str]],
              *, rows_per_page: int = 30, wrap: dict[int, str] | None = None, words: bool = False) -> bytes:
    """Header lines, then the table (its header row repeated on each page), then label/amount totals
    right-aligned under the last column. ``wrap``: row index -> a second description line."""
    pages: list[str] = []
    wrap = wrap or {}
    content = ""
    y = 800.0
    for line in header:
        content += _text(50, y, line, size=11 if line is header[0] else FONT_SIZE)
        y -= 16
    y -= 10

    def table_header(y: float) -> str:
        return "".join(_text(c.x, y, c.title, right=c.right, words=words) for c in columns)

    content += table_header(y)
    y -= 14
    on_page = 0
    for index, row in enumerate(rows):
        if on_page == rows_per_page:
            pages.append(content)
            content, y, on_page = "", 800.0, 0
            content += table_header(y)
            y -= 14
        for column, value in zip(columns, row, strict=True):
            if value:
                content += _text(column.x, y, value, right=column.right, words=words)
        y -= 12
        if index in wrap:
            description = next((c for c in columns if not c.right and c.title.lower().startswith(("desc", "bez", "beschr", "text", "prod"))), None)
            if description is not None:
                content += _text(description.x, y, wrap[index], words=words)
                y -= 12
        on_page += 1
    y -= 8
    right = max(c.x for c in columns if c.right) if any(c.right for c in columns) else 540
    for label, value in totals:
        content += _text(right - 190, y, label, words=words) + _text(right, y, value, right=True)
        y -= 13
    pages.append(content)
    return pdf_pages(pages)


def po_pdf(number: str) -> bytes:
    """The demo's PDF order: the German CSV's two lines as a supplier's ERP prints them."""
    columns = [Column("Pos.", 50), Column("Artikel-Nr.", 80), Column("Bezeichnung", 150), Column("Menge", 350, right=True),
               Column("ME", 360), Column("Einzelpreis", 450, right=True), Column("Gesamtpreis", 540, right=True)]
    rows = [["10", "ZX-100", "Palettenfolie 500mm", "48", "ST", "12,50", "600,00"],
            ["20", "ZX-220", "Umreifungsband 12mm", "10", "RL", "31,00", "310,00"]]
    return order_pdf([f"BESTELLUNG Nr. {number}", "Bestelldatum: 03.11.2026", "Besteller: Nordwind Logistik GmbH",
                      "Lieferanschrift: Hafenstraße 12, 20457 Hamburg"], columns, rows,
                     [("Nettobetrag EUR", "910,00"), ("MwSt. 19 %", "172,90"), ("Gesamtbetrag EUR", "1.082,90")])
