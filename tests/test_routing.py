from __future__ import annotations

from imap_intake.config import SupplierRule
from imap_intake.routing import attribute, ownership
from tests.conftest import make_workspace

RULES = (SupplierRule("acme.example", "Acme (domain)"), SupplierRule("boss@acme.example", "Acme (boss)"))


def test_address_rules_win_over_domain_rules() -> None:
    ws = make_workspace("w", supplier_rules=RULES)
    assert attribute(ws, "boss@acme.example").supplier == "Acme (boss)"
    assert attribute(ws, "clerk@eu.acme.example").supplier == "Acme (domain)"
    assert attribute(ws, "x@notacme.example").rule == "default supplier"


def test_no_rule_and_no_default_is_not_routed_with_reason() -> None:
    ws = make_workspace("w", default_supplier=None)
    route = attribute(ws, "x@y.example")
    assert not route.routed and "add a supplier rule" in route.reason
    assert attribute(ws, "x@y.example", "Conn Default").supplier == "Conn Default"


def test_recipient_ownership_with_catch_all() -> None:
    ws = make_workspace("w", recipients=("acme@orders.example", "*@acme.orders.example"))
    assert ownership(ws, ("acme@orders.example",)) is None
    assert ownership(ws, ("buyer@acme.orders.example",)) is None
    assert "not addressed to this workspace" in (ownership(ws, ("other@orders.example",)) or "")
    assert ownership(make_workspace("v"), ("anyone@x.example",)) is None
