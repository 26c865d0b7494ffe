"""Address lists of any size and shape: the library's answer where it has one, a linear scan where it recurses."""

from __future__ import annotations

from email.utils import getaddresses

import pytest

from imap_intake.mime.addresses import addresses, scan, sender

# Groups not closed with ';': the standard library recurses once per group.
OPEN_GROUPS = ", ".join(f"team{i}: member{i}@corp.example" for i in range(5000))


def test_the_library_recurses_on_open_groups() -> None:
    """What this module exists for: if the library stops recursing, the fallback is no longer needed."""
    with pytest.raises(RecursionError):
        getaddresses([OPEN_GROUPS])


def test_thousands_of_open_groups_give_every_member() -> None:
    found = addresses([OPEN_GROUPS])
    assert len(found) == 5000 and found[0] == "member0@corp.example" and found[-1] == "member4999@corp.example"


@pytest.mark.parametrize(("value", "expected"), [
    ('"Doe, Jane" <Jane.Doe@Acme.example>, bob@b.example', ["jane.doe@acme.example", "bob@b.example"]),
    ("Team: a@x.example, b@x.example;, c@y.example", ["a@x.example", "b@x.example", "c@y.example"]),
    ("a@x.example (Alice, Sales), <b@x.example>", ["a@x.example", "b@x.example"]),
    ("<@relay.example:c@x.example>", ["c@x.example"]),
    ('"weird <not@this.example>" <real@x.example>', ["real@x.example"]),
    ("undisclosed-recipients:;", []),
])
def test_the_scan_reads_what_the_library_reads(value: str, expected: list[str]) -> None:
    assert [a.lower() for a in scan(value) if "@" in a] == expected
    assert list(addresses([value])) == expected


def test_nested_open_groups_and_unclosed_brackets_end() -> None:
    value = " ".join(f"g{i}:" for i in range(20000)) + " first@x.example, Name <open@y.example"
    assert addresses([value]) == ("first@x.example", "open@y.example")


def test_sender_takes_the_first_address_whatever_the_from_holds() -> None:
    assert sender("Buyer <Buyer@Acme.example>") == "buyer@acme.example"
    assert sender(", ".join(f"g{i}: s{i}@x.example" for i in range(3000))) == "s0@x.example"
    assert sender("no address here") is None


def test_an_unquoted_display_name_that_looks_like_an_address_is_not_the_sender() -> None:
    # From a real message (MimeKit's test data, issue358.txt): the library takes the display name for the address.
    assert sender("jang.abcdef@xyzlinu <jang.abcdef@xyzlinux12345678.it>") == "jang.abcdef@xyzlinux12345678.it"


def test_angle_addresses_without_commas_are_all_found() -> None:
    # enmime's malformed-multiple-address-header-values.raw
    assert scan("Bob Dunite <bob@extern> Bobby Dunite <bobby@extern>") == ["bob@extern", "bobby@extern"]
