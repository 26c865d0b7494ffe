"""UBL 2.1 Order and cXML OrderRequest, parsed with defusedxml (no entities, no external references)."""

from __future__ import annotations

from xml.etree.ElementTree import Element

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException

from imap_intake.exceptions import OrderParseError
from imap_intake.orders.model import Order, OrderLine, date, decimal

UBL_ORDER = "urn:oasis:names:specification:ubl:schema:xsd:Order-2"
CBC = "{urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2}"
CAC = "{urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2}"


def _text(element: Element | None, path: str) -> str | None:
    if element is None:
        return None
    found = element.find(path)
    return found.text.strip() if found is not None and found.text and found.text.strip() else None


def parse_ubl(root: Element) -> Order:
    lines = []
    for number, line in enumerate(root.iter(f"{CAC}OrderLine"), start=1):
        item = line.find(f"{CAC}LineItem")
        if item is None:
            continue
        quantity = item.find(f"{CBC}Quantity")
        lines.append(
            OrderLine(
                line_no=number,
                sku=_text(item, f"{CAC}Item/{CAC}SellersItemIdentification/{CBC}ID")
                or _text(item, f"{CAC}Item/{CAC}BuyersItemIdentification/{CBC}ID"),
                description=_text(item, f"{CAC}Item/{CBC}Name") or _text(item, f"{CAC}Item/{CBC}Description"),
                quantity=decimal(quantity.text if quantity is not None else None),
                unit=quantity.get("unitCode") if quantity is not None else None,
                unit_price=decimal(_text(item, f"{CAC}Price/{CBC}PriceAmount")),
                amount=decimal(_text(item, f"{CBC}LineExtensionAmount")),
            )
        )
    if not lines:
        raise OrderParseError("UBL Order has no OrderLine/LineItem")
    return Order(
        format="ubl",
        order_number=_text(root, f"{CBC}ID"),
        order_date=date(_text(root, f"{CBC}IssueDate")),
        currency=_text(root, f"{CBC}DocumentCurrencyCode"),
        buyer=_text(root, f"{CAC}BuyerCustomerParty/{CAC}Party/{CAC}PartyName/{CBC}Name"),
        total=decimal(_text(root, f"{CAC}AnticipatedMonetaryTotal/{CBC}PayableAmount")),
        lines=tuple(lines),
    )


def parse_cxml(root: Element) -> Order:
    request = root.find("Request/OrderRequest")
    if request is None:
        raise OrderParseError("cXML document has no Request/OrderRequest")
    header = request.find("OrderRequestHeader")
    if header is None:
        raise OrderParseError("cXML OrderRequest has no OrderRequestHeader")
    lines = []
    for number, item in enumerate(request.iter("ItemOut"), start=1):
        lines.append(
            OrderLine(
                line_no=int(item.get("lineNumber") or number),
                sku=_text(item, "ItemID/SupplierPartID"),
                description=_text(item, "ItemDetail/Description"),
                quantity=decimal(item.get("quantity")),
                unit=_text(item, "ItemDetail/UnitOfMeasure"),
                unit_price=decimal(_text(item, "ItemDetail/UnitPrice/Money")),
            )
        )
    if not lines:
        raise OrderParseError("cXML OrderRequest has no ItemOut")
    money = header.find("Total/Money")
    return Order(
        format="cxml",
        order_number=header.get("orderID"),
        order_date=date((header.get("orderDate") or "")[:10]),
        currency=money.get("currency") if money is not None else None,
        buyer=_text(header, "ShipTo/Address/Name") or _text(header, "BillTo/Address/Name"),
        total=decimal(money.text if money is not None else None),
        lines=tuple(lines),
    )


def parse_xml(data: bytes) -> Order:
    try:
        root = DET.fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise OrderParseError(f"XML refused: it declares entities or external references ({type(exc).__name__})") from exc
    except DET.ParseError as exc:
        raise OrderParseError(f"not well-formed XML: {exc}") from exc
    if root.tag == f"{{{UBL_ORDER}}}Order":
        return parse_ubl(root)
    if root.tag == "cXML":
        return parse_cxml(root)
    raise OrderParseError(f"XML root <{root.tag}> is neither a UBL 2.1 Order nor a cXML OrderRequest")
