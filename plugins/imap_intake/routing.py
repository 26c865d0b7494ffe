"""Which workspace a message belongs to and which supplier sent it. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from imap_intake.config import Workspace


@dataclass(frozen=True)
class Route:
    routed: bool
    reason: str
    supplier: str | None = None
    rule: str | None = None


def _recipient_match(owned: tuple[str, ...], recipients: tuple[str, ...]) -> str | None:
    for address in recipients:
        for pattern in owned:
            if pattern.startswith("*@"):
                if address.endswith(pattern[1:]):
                    return address
            elif address == pattern:
                return address
    return None


def ownership(workspace: Workspace, recipients: tuple[str, ...]) -> str | None:
    """``None`` when the workspace takes this message, else the reason it does not."""
    if not workspace.recipients or _recipient_match(workspace.recipients, recipients):
        return None
    return (
        f"not addressed to this workspace: recipients {', '.join(recipients) or '(none)'} "
        f"match none of {', '.join(workspace.recipients)}"
    )


def attribute(workspace: Workspace, sender: str | None, connection_default: str | None = None, *,
              forwarded_senders: tuple[str, ...] = ()) -> Route:
    """The first sender rule that matches (address rules before domain rules), tried on the
    sender and then on the senders of forwarded messages inside it; else the workspace's
    default supplier, else the connection's."""
    sender = (sender or "").lower()
    rules = sorted(workspace.supplier_rules, key=lambda r: "@" not in r.match)
    for candidate, via in [(sender, "sender"), *((s, "forwarded sender") for s in forwarded_senders)]:
        for rule in rules:
            if candidate and rule.matches(candidate):
                return Route(True, "routed", rule.supplier, f"{via} {rule.match}")
    default = workspace.default_supplier or connection_default
    if default:
        return Route(True, "routed", default, "default supplier")
    return Route(
        False,
        f"no supplier for sender {sender or '(none)'}: add a supplier rule for it or a default_supplier",
    )
