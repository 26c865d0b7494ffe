"""Realistic purchase-order mail for the demo mailbox, the tests and the benchmarks."""

from __future__ import annotations

import datetime as dt
import email.policy
import io
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from imap_intake.mime.tnef import TnefFile, pack

SMTP = email.policy.SMTP


def make_pdf(lines: list[str], *, padding: int = 0) -> bytes:
    """A small valid PDF with a text layer (pypdf can read it). ``padding`` adds bytes in a comment stream."""

    def esc(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    content = "BT /F1 12 Tf 72 740 Td 16 TL " + " ".join(f"({esc(line)}) Tj T*" for line in lines) + " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(content)} >>\nstream\n{content}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    if padding:
        filler = ("0123456789abcdef" * (padding // 16 + 1))[:padding]
        objects.append(f"<< /Length {len(filler)} >>\nstream\n{filler}\nendstream")
    from devstack.pdf_orders import write_pdf

    return write_pdf(objects)


def po_pdf(number: str, *, padding: int = 0) -> bytes:
    """A purchase order as a supplier's ERP prints it (a lines table: ``pdf_orders.po_pdf``); with
    ``padding``, a plain text PDF of about that many bytes more (benchmarks of large attachments)."""
    if not padding:
        from devstack.pdf_orders import po_pdf as table_pdf

        return table_pdf(number)
    return make_pdf(
        [f"PURCHASE ORDER No: {number}", "Date: 2026-11-02", "Buyer: Nordwind Logistics GmbH",
         "Item ZX-100 Pallet wrap 48 x 12.50 EUR", "Item ZX-220 Strapping band 10 x 31.00 EUR",
         "Total: 910.00 EUR"],
        padding=padding,
    )


PO_CSV_DE = (
    "Bestellnummer;Bestelldatum;Artikelnummer;Bezeichnung;Menge;Einheit;Einzelpreis;Gesamtpreis;Währung\n"
    "4500012345;03.11.2026;ZX-100;Palettenfolie 500mm;48;ST;12,50;600,00;EUR\n"
    "4500012345;03.11.2026;ZX-220;Umreifungsband 12mm;10;RL;31,00;310,00;EUR\n"
).encode("cp1252")

PO_CSV_EN = (
    b"PO Number,Order Date,SKU,Description,Qty,Unit Price,Amount,Currency\n"
    b"PO-7731,2026-11-04,AB-1,Cable ties 200mm,1000,0.04,40.00,USD\n"
    b"PO-7731,2026-11-04,AB-7,Label rolls,12,8.50,102.00,USD\n"
)

UBL_ORDER = b"""<?xml version="1.0" encoding="UTF-8"?>
<Order xmlns="urn:oasis:names:specification:ubl:schema:xsd:Order-2"
       xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
       xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">
  <cbc:UBLVersionID>2.1</cbc:UBLVersionID>
  <cbc:ID>UBL-34127</cbc:ID>
  <cbc:IssueDate>2026-11-05</cbc:IssueDate>
  <cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>
  <cac:BuyerCustomerParty><cac:Party><cac:PartyName><cbc:Name>Hafenkontor AG</cbc:Name></cac:PartyName></cac:Party></cac:BuyerCustomerParty>
  <cac:AnticipatedMonetaryTotal><cbc:PayableAmount currencyID="EUR">455.00</cbc:PayableAmount></cac:AnticipatedMonetaryTotal>
  <cac:OrderLine><cac:LineItem><cbc:ID>1</cbc:ID><cbc:Quantity unitCode="EA">5</cbc:Quantity>
    <cbc:LineExtensionAmount currencyID="EUR">455.00</cbc:LineExtensionAmount>
    <cac:Price><cbc:PriceAmount currencyID="EUR">91.00</cbc:PriceAmount></cac:Price>
    <cac:Item><cbc:Name>Hand pallet truck wheel set</cbc:Name>
      <cac:SellersItemIdentification><cbc:ID>HPT-WS-2</cbc:ID></cac:SellersItemIdentification></cac:Item>
  </cac:LineItem></cac:OrderLine>
</Order>
"""

CXML_ORDER = b"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE cXML SYSTEM "http://xml.cxml.org/schemas/cXML/1.2.014/cXML.dtd">
<cXML payloadID="1699999@buyer.example" timestamp="2026-11-06T10:00:00+00:00">
  <Header><From><Credential domain="DUNS"><Identity>123</Identity></Credential></From>
    <To><Credential domain="DUNS"><Identity>456</Identity></Credential></To>
    <Sender><Credential domain="DUNS"><Identity>123</Identity></Credential><UserAgent>ERP</UserAgent></Sender></Header>
  <Request><OrderRequest>
    <OrderRequestHeader orderID="CX-9001" orderDate="2026-11-06T10:00:00+00:00" type="new">
      <Total><Money currency="USD">250.00</Money></Total>
      <ShipTo><Address><Name xml:lang="en">Buyer Warehouse 3</Name></Address></ShipTo>
    </OrderRequestHeader>
    <ItemOut quantity="10" lineNumber="1">
      <ItemID><SupplierPartID>GL-44</SupplierPartID></ItemID>
      <ItemDetail><UnitPrice><Money currency="USD">25.00</Money></UnitPrice>
        <Description xml:lang="en">Safety gloves, size L</Description><UnitOfMeasure>PR</UnitOfMeasure></ItemDetail>
    </ItemOut>
  </OrderRequest></Request>
</cXML>
"""


def x12_order(number: str) -> bytes:
    """An ANSI X12 850 purchase order (two lines), as an EDI gateway mails it."""
    return (
        "ISA*00*          *00*          *ZZ*ACMEBUYER      *ZZ*SUPPLIERCO     *261201*0930*U*00401*000000123*0*P*>~\n"
        "GS*PO*ACMEBUYER*SUPPLIERCO*20261201*0930*123*X*004010~\nST*850*0001~\n"
        f"BEG*00*SA*{number}**20261201~\nCUR*BY*USD~\nN1*BY*Acme Retail Inc*92*0042~\n"
        "PO1*1*1000*EA*0.04**VP*AB-1~\nPID*F****Cable ties 200mm~\nPO1*2*12*EA*8.50**VP*AB-7~\nPID*F****Label rolls~\n"
        "CTT*2~\nAMT*TT*142.00~\nSE*11*0001~\nGE*1*123~\nIEA*1*000000123~\n"
    ).encode()


def make_xlsx(rows: list[list[object]]) -> bytes:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def message(
    *,
    sender: str,
    to: str,
    subject: str,
    body: str = "Please find our purchase order attached.\n",
    attachments: list[tuple[str, str, bytes]] = (),  # type: ignore[assignment]
    date: dt.datetime | None = None,
    message_id: str | None = None,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date or dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.UTC))
    msg["Message-ID"] = message_id or make_msgid(domain=sender.rpartition("@")[2] or "example.test")
    msg.set_content(body)
    for filename, ctype, data in attachments:
        maintype, _, subtype = ctype.partition("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg


def forward(original: EmailMessage, *, sender: str, to: str, note: str) -> EmailMessage:
    msg = message(sender=sender, to=to, subject="Fwd: " + str(original["Subject"]), body=note)
    msg.add_attachment(original)  # message/rfc822
    return msg


def demo_mailbox(to: str = "orders@example.test") -> list[tuple[bytes, dt.datetime]]:
    """The demo mailbox: a handful of realistic PO emails and the awkward cases."""
    day = dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.UTC)
    pdf_po = message(sender="einkauf@nordwind-logistik.example", to=to, subject="Bestellung 4500012345",
                     attachments=[("PO-4500012345.pdf", "application/pdf", po_pdf("4500012345"))])
    messages = [
        message(sender="einkauf@nordwind-logistik.example", to=to, subject="Bestellung 4500012345 (CSV)",
                attachments=[("Bestellung 4500012345.csv", "text/csv", PO_CSV_DE)]),
        pdf_po,
        message(sender="procurement@hafenkontor.example", to=to, subject="Order UBL-34127",
                attachments=[("order-UBL-34127.xml", "application/xml", UBL_ORDER)]),
        forward(
            message(sender="buyer@acme-retail.example", to="sales@example.test", subject="PO-7731",
                    attachments=[("PO-7731.csv", "application/octet-stream", PO_CSV_EN)]),
            sender="sales@example.test", to=to, note="Forwarding Acme's order, please process.\n",
        ),
        message(sender="it@acme-retail.example", to=to, subject="Punchout order CX-9001",
                attachments=[("CX-9001.xml", "text/xml", CXML_ORDER)]),
        message(sender="buyer@acme-retail.example", to=to, subject="Quick question about delivery dates",
                body="Hi, when can you deliver the pallet wrap? Thanks.\n"),
        message(sender="buyer@acme-retail.example", to=to, subject="Order form (Word)",
                attachments=[("order.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                              _docx())]),
        message(sender="einkauf@nordwind-logistik.example", to=to, subject="Bestellung via Outlook",
                attachments=[("winmail.dat", "application/ms-tnef",
                              pack([TnefFile("Bestellung-4500012399.csv", PO_CSV_DE.replace(b"4500012345", b"4500012399"))]))]),
    ]
    return [(m.as_bytes(policy=SMTP), day + dt.timedelta(hours=i)) for i, m in enumerate(messages)]


def _docx() -> bytes:
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<document/>")
    return out.getvalue()
