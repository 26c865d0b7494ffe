"""A corpus of generated PDF purchase orders in the layouts ERPs print, with the truth, and a scorer.

Six layouts (English and German labels, columns in other orders, no position or unit or SKU column,
decimal commas and thousands separators, currency signs in cells, descriptions wrapped onto a second
line, tables continued over pages, totals with tax on top, text placed cell by cell or word by word
with Helvetica's real widths), ten orders each from a fixed seed.
``python -m tests.orders.pdf_corpus`` prints the field accuracy per layout.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal

from devstack.pdf_orders import Column, order_pdf

ITEMS = ["Pallet wrap 500mm", "Strapping band 12mm", "Cable ties 200mm", "Label rolls 100x50", "Corner boards",
         "Stretch film hand roll", "Packing tape brown", "Bubble wrap 1m", "Carton 600x400x400", "Gloves nitrile L",
         "Palettenfolie 500mm", "Umreifungsband 12mm", "Kantenschutz 35mm", "Klebeband braun", "Luftpolsterfolie"]


@dataclass(frozen=True)
class Truth:
    number: str
    date: dt.date
    lines: tuple[tuple[Decimal, Decimal, Decimal], ...]  # quantity, unit price, amount


def _money(value: Decimal, comma: bool, sign: str = "") -> str:
    text = f"{value:,.2f}"
    if comma:
        text = text.replace(",", "X").replace(".", ",").replace("X", ".")
    return f"{sign}{text}" if sign else text


def _lines(rng: random.Random, count: int) -> list[tuple[str, str, Decimal, Decimal, Decimal]]:
    out = []
    for _ in range(count):
        quantity = Decimal(rng.choice([1, 2, 5, 10, 12, 24, 48, 100, 250, 1000, 1500]))
        price = Decimal(rng.randint(5, 250000)) / 100
        out.append((f"{rng.choice('ABXZ')}{rng.choice('KLMZ')}-{rng.randint(100, 9999)}", rng.choice(ITEMS), quantity, price,
                    (quantity * price).quantize(Decimal("0.01"))))
    return out


def _net(lines: list[tuple[str, str, Decimal, Decimal, Decimal]]) -> Decimal:
    return sum((amount for *_x, amount in lines), Decimal(0))


def _truth(number: str, day: dt.date, lines: list[tuple[str, str, Decimal, Decimal, Decimal]]) -> Truth:
    """What the reader must find: the order's number, date and each line's quantity, price and amount."""
    return Truth(number, day, tuple((q, p, a) for *_x, q, p, a in lines))


def english(rng: random.Random, n: int) -> tuple[bytes, Truth]:
    number, day = f"PO-{rng.randint(10000, 99999)}", dt.date(2026, rng.randint(1, 12), rng.randint(1, 28))
    lines = _lines(rng, rng.randint(1, 8))
    columns = [Column("Line", 40), Column("Item No.", 70), Column("Description", 140), Column("Qty", 350, right=True),
               Column("Unit", 360), Column("Unit Price", 460, right=True), Column("Amount", 550, right=True)]
    rows = [[str(i + 1), sku, desc, str(q), "EA", _money(p, False), _money(a, False)] for i, (sku, desc, q, p, a) in enumerate(lines)]
    net = _net(lines)
    tax = (net * Decimal("0.08")).quantize(Decimal("0.01"))
    pdf = order_pdf(["PURCHASE ORDER", f"PO Number: {number}", f"Order Date: {day.isoformat()}", "Buyer: Acme Retail Inc",
                     "Ship to: 1 Harbor Way, Oakland CA"], columns, rows,
                    [("Subtotal", _money(net, False)), ("Sales tax 8%", _money(tax, False)), ("Total USD", _money(net + tax, False))],
                    words=True)  # each word placed on its own
    return pdf, _truth(number, day, lines)


def german(rng: random.Random, n: int) -> tuple[bytes, Truth]:
    number, day = str(4500000000 + rng.randint(1, 99999)), dt.date(2026, rng.randint(1, 12), rng.randint(1, 28))
    lines = _lines(rng, rng.randint(1, 8))
    columns = [Column("Pos.", 40), Column("Artikel-Nr.", 70), Column("Bezeichnung", 140), Column("Menge", 350, right=True),
               Column("ME", 360), Column("Einzelpreis", 460, right=True), Column("Gesamtpreis", 550, right=True)]
    rows = [[str((i + 1) * 10), sku, desc, str(q), "ST", _money(p, True), _money(a, True)] for i, (sku, desc, q, p, a) in enumerate(lines)]
    net = _net(lines)
    vat = (net * Decimal("0.19")).quantize(Decimal("0.01"))
    pdf = order_pdf([f"Bestellung {number}", f"Bestelldatum: {day:%d.%m.%Y}", "Besteller: Nordwind Logistik GmbH",
                     "Bitte bei Rückfragen die Bestellnummer angeben."], columns, rows,
                    [("Nettobetrag EUR", _money(net, True)), ("MwSt. 19 %", _money(vat, True)), ("Gesamtbetrag EUR", _money(net + vat, True))])
    return pdf, _truth(number, day, lines)


def dollars(rng: random.Random, n: int) -> tuple[bytes, Truth]:
    """No position or unit column; currency signs in the cells; a total without tax."""
    number, day = f"{rng.randint(100000, 999999)}", dt.date(2026, rng.randint(1, 12), rng.randint(1, 28))
    lines = _lines(rng, rng.randint(1, 8))
    columns = [Column("SKU", 40), Column("Description", 120), Column("Quantity", 380, right=True), Column("Price", 460, right=True),
               Column("Total", 550, right=True)]
    rows = [[sku, desc, f"{q:,}", _money(p, False, "$"), _money(a, False, "$")] for sku, desc, q, p, a in lines]
    net = _net(lines)
    pdf = order_pdf(["Purchase Order", f"Order #: {number}", f"Date: {day:%m/%d/%Y}".replace(f"{day:%m/%d/%Y}", day.isoformat())],
                    columns, rows, [("Order Total", _money(net, False, "$"))])
    return pdf, _truth(number, day, lines)


def wrapped(rng: random.Random, n: int) -> tuple[bytes, Truth]:
    """German, no SKU column, descriptions on two lines."""
    number, day = f"B-{rng.randint(1000, 9999)}/26", dt.date(2026, rng.randint(1, 12), rng.randint(1, 28))
    lines = _lines(rng, rng.randint(2, 6))
    columns = [Column("Pos", 40), Column("Bezeichnung", 80), Column("Menge", 360, right=True), Column("Einzelpreis", 460, right=True),
               Column("Betrag", 550, right=True)]
    rows = [[str(i + 1), desc, str(q), _money(p, True), _money(a, True)] for i, (_s, desc, q, p, a) in enumerate(lines)]
    net = _net(lines)
    pdf = order_pdf([f"Auftrag Nr. {number}", f"Datum: {day:%d.%m.%Y}"], columns, rows, [("Summe netto", _money(net, True))],
                    wrap={i: "Lieferung frei Haus, Anlieferung Rampe 3" for i in range(0, len(rows), 2)})
    return pdf, _truth(number, day, lines)


def long_order(rng: random.Random, n: int) -> tuple[bytes, Truth]:
    """Forty to sixty lines: the table goes on over two or three pages, its header repeated."""
    number, day = f"PO{rng.randint(1000000, 9999999)}", dt.date(2026, rng.randint(1, 12), rng.randint(1, 28))
    lines = _lines(rng, rng.randint(40, 60))
    columns = [Column("Item", 40), Column("Part Number", 70), Column("Description", 150), Column("Qty", 370, right=True),
               Column("UOM", 380), Column("Unit Cost", 470, right=True), Column("Extended Price", 555, right=True)]
    rows = [[str(i + 1), sku, desc, str(q), "EA", _money(p, False), _money(a, False)] for i, (sku, desc, q, p, a) in enumerate(lines)]
    net = _net(lines)
    pdf = order_pdf(["PURCHASE ORDER", f"Purchase Order No: {number}", f"PO Date: {day.isoformat()}"], columns, rows,
                    [("Total", _money(net, False))], rows_per_page=25, words=n % 2 == 0)
    return pdf, _truth(number, day, lines)


def reordered(rng: random.Random, n: int) -> tuple[bytes, Truth]:
    """Quantity first, then the item; 'Ext. Price'."""
    number, day = f"{rng.randint(10000000, 99999999)}", dt.date(2026, rng.randint(1, 12), rng.randint(1, 28))
    lines = _lines(rng, rng.randint(1, 8))
    columns = [Column("Qty", 60, right=True), Column("Item Number", 80), Column("Description", 170), Column("Unit Price", 460, right=True),
               Column("Ext. Price", 550, right=True)]
    rows = [[str(q), sku, desc, _money(p, False), _money(a, False)] for sku, desc, q, p, a in lines]
    net = _net(lines)
    pdf = order_pdf(["ORDER", f"Order No. {number}", f"Order Date: {day.isoformat()}"], columns, rows,
                    [("Subtotal", _money(net, False)), ("Freight", "0.00"), ("Grand Total", _money(net, False))])
    return pdf, _truth(number, day, lines)


LAYOUTS: dict[str, Callable[[random.Random, int], tuple[bytes, Truth]]] = {
    "english": english, "german": german, "dollars": dollars, "wrapped": wrapped, "long": long_order, "reordered": reordered,
}


def corpus(per_layout: int = 10, seed: int = 26) -> Iterator[tuple[str, bytes, Truth]]:
    rng = random.Random(seed)
    for name, make in LAYOUTS.items():
        for n in range(per_layout):
            pdf, truth = make(rng, n)
            yield f"{name}-{n}", pdf, truth


@dataclass
class Score:
    documents: int = 0
    header_right: int = 0  # number, date and line count all right
    lines: int = 0
    lines_right: int = 0  # quantity, unit price and amount all right
    wrong_unflagged: int = 0  # a document with any field wrong and no needs_review


def score(parse: Callable[[bytes], object]) -> dict[str, Score]:
    scores: dict[str, Score] = {}
    for name, pdf, truth in corpus():
        layout = name.rsplit("-", 1)[0]
        s = scores.setdefault(layout, Score())
        order = parse(pdf)
        s.documents += 1
        got = [(line.quantity, line.unit_price, line.amount) for line in order.lines]  # type: ignore[attr-defined]
        header = order.order_number == truth.number and order.order_date == truth.date and len(got) == len(truth.lines)  # type: ignore[attr-defined]
        s.header_right += header
        s.lines += len(truth.lines)
        s.lines_right += sum(1 for g, t in zip(got, truth.lines, strict=False) if g == t)
        if (not header or got != list(truth.lines)) and not order.needs_review:  # type: ignore[attr-defined]
            s.wrong_unflagged += 1
    return scores


if __name__ == "__main__":
    from imap_intake.orders.pdf import parse_pdf

    for layout, s in score(parse_pdf).items():
        print(f"{layout:<10} documents {s.documents}: header+line count right {s.header_right}/{s.documents}, "
              f"lines right {s.lines_right}/{s.lines}, wrong without a flag {s.wrong_unflagged}")
