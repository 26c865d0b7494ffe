"""Spreadsheets as ERPs export them: a title block above the table, ';' and tab delimiters, decimal commas
and thousands separators, section titles between lines, totals rows, the lines on the second sheet."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

from imap_intake.orders import parse

GERMAN_EXPORT = (
    "Bestellung;;;;;\n"
    "Bestellnummer:;4500012345;;;;\n"
    "Datum:;03.11.2026;;;;\n"
    "Lieferant:;Nordwind Logistik GmbH;;;;\n"
    ";;;;;\n"
    "Pos.;Artikelnummer;Bezeichnung;Menge;Einzelpreis;Gesamtpreis\n"
    "10;ZX-100;Palettenfolie 500mm;48;12,50;600,00\n"
    ";;Verpackungsmaterial;;;\n"
    "20;ZX-900;Stretchfolie Maschine;100;12,345;1.234,50\n"
    ";;;;;\n"
    "Summe netto;;;;;1.834,50\n"
    "MwSt. 19 %;;;;;348,56\n"
    "Gesamtbetrag;;;;;2.183,06\n"
).encode("cp1252")


def test_a_german_export_with_a_title_block_a_section_title_and_totals_rows() -> None:
    order = parse("csv", GERMAN_EXPORT)
    assert (order.order_number, order.order_date) == ("4500012345", dt.date(2026, 11, 3))
    assert [(x.sku, x.quantity, x.unit_price, x.amount) for x in order.lines] == [
        ("ZX-100", 48, Decimal("12.50"), Decimal("600.00")), ("ZX-900", 100, Decimal("12.345"), Decimal("1234.50"))]
    assert order.total == Decimal("1834.50") and not order.needs_review, order.review_reason


def test_a_tab_export_whose_total_disagrees_with_its_lines_is_flagged() -> None:
    rows = [["PO Number", "PO-7731"], [], ["SKU", "Description", "Qty", "Unit Price", "Amount"],
            ["AB-1", "Cable ties", "1,000", "0.04", "40.00"], ["AB-7", "Label rolls", "12", "8.50", "102.00"],
            ["Total", "", "", "", "150.00"]]
    order = parse("csv", "\n".join("\t".join(row) for row in rows).encode())
    assert order.order_number == "PO-7731" and [x.quantity for x in order.lines] == [1000, 12]
    assert order.needs_review and "the lines add up to 142.00, the totals row states 150.00" in (order.review_reason or "")


def test_a_workbook_with_a_cover_sheet_and_the_lines_on_the_second() -> None:
    import openpyxl

    workbook = openpyxl.Workbook()
    cover = workbook.active
    cover.title = "Deckblatt"
    cover.append(["Bestellung an Nordwind Logistik"])
    cover.append(["Bitte bestätigen Sie den Auftrag."])
    lines = workbook.create_sheet("Positionen")
    lines.append(["Bestellnummer", "4500012399"])
    lines.merge_cells("A2:C2")
    lines["A2"] = "Auftragspositionen"
    lines.append([])
    lines.append(["Artikel-Nr.", "Bezeichnung", "Menge", "Einzelpreis", "Gesamtpreis"])
    lines.append(["ZX-100", "Palettenfolie", 48, 12.5, 600])
    lines.append(["ZX-220", "Umreifungsband", 10, 31, 310])
    lines.append(["Summe", None, None, None, 910])
    out = io.BytesIO()
    workbook.save(out)
    order = parse("xlsx", out.getvalue())
    assert order.order_number == "4500012399" and len(order.lines) == 2 and order.total == Decimal("910")
    assert not order.needs_review, order.review_reason
