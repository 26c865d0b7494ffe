"""Addresses out of From/To/Cc/Delivered-To values, for headers of any size. Pure, never raises.

The standard library's address parser (``email.utils.getaddresses``) recurses once per group
that is not closed with ``;``: a real To header of a few thousand such groups raises
``RecursionError``, and the message's attachments would be lost with it. It is also strict since
the CVE-2023-27043 fix and answers ``('', '')`` for a whole list it finds suspicious. So the
library's answer is used when it has one, and this module's linear scanner otherwise: one pass
over the characters, quoted strings, comments, angle brackets and groups tracked by state, no
recursion, so its cost is the header's length whatever its shape.
"""

from __future__ import annotations

from email.utils import getaddresses

MAX_ADDRESSES = 10_000  # a header listing more is a mass mailing; routing needs the first ones


def addresses(values: list[str]) -> tuple[str, ...]:
    """The distinct addresses (lower-cased, with an ``@``) the values name, in order."""
    try:
        found = [address for _display, address in getaddresses(values)]
    except (RecursionError, ValueError, IndexError, TypeError):
        found = []
    parsed = _distinct(found)
    if not parsed and any("@" in value for value in values):
        parsed = _distinct(scan(", ".join(values)))
    return parsed


def sender(value: str) -> str | None:
    """The one address of a From value (the first, if it lists several), lower-cased. An address in
    angle brackets wins over a display name that looks like one (``a@b <a@b.example>``, which the
    library reads as two addresses, the display name first)."""
    found = _distinct(scan(value)) if "<" in value else ()
    found = found or addresses([value])
    return found[0][:998] if found else None


def scan(text: str) -> list[str]:
    """Every address-like item of an address list, by a single linear pass (see the module docstring)."""
    items: list[str] = []
    current: list[str] = []   # the item's characters outside comments
    angle: list[str] | None = None  # inside <...>: its characters
    angled: list[str] = []    # the item's <...> (several where a mailer forgot the commas)
    quoted = escaped = False
    depth = 0                 # comment nesting

    def close() -> None:
        nonlocal current, angled
        found = angled or ["".join(current)]
        current, angled = [], []
        items.extend(item for item in found if item.strip())

    for char in text:
        if escaped:
            escaped = False
            (angle if angle is not None else current).append(char)
        elif char == "\\" and (quoted or depth):
            escaped = True
        elif depth:
            depth += char == "("
            depth -= char == ")"
        elif quoted:
            quoted = char != '"'
            (angle if angle is not None else current).append(char)
        elif char == '"':
            quoted = True
            (angle if angle is not None else current).append(char)
        elif char == "(":
            depth = 1
        elif angle is not None:
            if char == ">":
                angled.append("".join(angle))
                angle = None
            else:
                angle.append(char)
        elif char == "<":
            angle = []
        elif char in ",;":
            close()
        elif char == ":":
            current, angled = [], []  # a group's display name: its members follow
        else:
            current.append(char)
        if len(items) >= MAX_ADDRESSES:
            return [_addr_spec(item) for item in items]
    if angle is not None:
        angled.append("".join(angle))
    close()
    return [_addr_spec(item) for item in items]


def _addr_spec(item: str) -> str:
    """``a@b`` out of an item: a source route (``@relay:a@b``) dropped, spaces and quotes around removed."""
    item = item.rpartition(":")[2] if item.lstrip().startswith("@") else item
    words = item.split()
    with_at = [word for word in words if "@" in word]
    return (with_at[-1] if with_at else "".join(words)).strip('"')


def _distinct(found: list[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for address in found:
        address = address.strip().lower()
        if "@" in address and address not in seen:
            seen[address] = None
            if len(seen) >= MAX_ADDRESSES:
                break
    return tuple(seen)
