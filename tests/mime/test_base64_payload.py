"""The direct base64 decode gives exactly what the email package gives, and leaves to it the bodies
that need its repairs."""

from __future__ import annotations

import base64
import email

import pytest

from imap_intake.mime import headers
from imap_intake.mime.extract import _base64_payload, _payload

DATA = bytes(range(256)) * 40


def part(body: str, cte: str = "base64") -> email.message.Message:
    raw = f"Content-Type: application/pdf\r\nContent-Transfer-Encoding: {cte}\r\n\r\n{body}".encode("utf-8", "surrogateescape")
    return email.message_from_bytes(raw, policy=headers.POLICY)


def wrapped(data: bytes) -> str:
    text = base64.b64encode(data).decode()
    return "\r\n".join(text[i : i + 76] for i in range(0, len(text), 76)) + "\r\n"


@pytest.mark.parametrize("body", [
    wrapped(DATA),                                  # clean
    wrapped(DATA).replace("\r\n", "\n"),            # bare LF
    wrapped(DATA)[:200] + "!*~" + wrapped(DATA)[200:],  # stray characters: skipped by both
    wrapped(DATA).rstrip("=\r\n") + "\r\n",         # padding lost: the email package repairs it
    wrapped(DATA)[:-9] + "\r\n",                    # truncated
    "",                                             # empty
])
def test_the_bytes_are_what_the_email_package_gives(body: str) -> None:
    message = part(body)
    assert _payload(message) == part(body).get_payload(decode=True)


def test_only_plain_base64_takes_the_direct_path() -> None:
    assert _base64_payload(part(wrapped(DATA))) == DATA
    assert _base64_payload(part(wrapped(DATA).rstrip("=\r\n") + "\r\n")) is None  # needs the padding repair
    assert _base64_payload(part("QUJD\u00e9RA==\r\n")) is None                      # not ASCII
    assert _base64_payload(part("plain text\r\n", cte="7bit")) is None
