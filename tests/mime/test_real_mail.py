"""Real mailers' messages (tests/mime/real/SOURCES.md): our reading agrees with the reference decoders."""

from __future__ import annotations

from pathlib import Path

import pytest

from imap_intake.mime.extract import Limits, extract

REAL = Path(__file__).parent / "real"
EVERYTHING = Limits(accepted=frozenset({"pdf", "csv", "xlsx", "xml", "text", "image"}))


def _read(name: str) -> bytes:
    return (REAL / name).read_bytes()


def test_every_sample_is_read_without_replacement_characters() -> None:
    samples = sorted(REAL.glob("*.eml"))
    assert len(samples) >= 3
    for path in samples:
        result = extract(path.read_bytes(), EVERYTHING)
        names = [a.original_filename for a in result.attachments] + [s.original_filename for s in result.skipped]
        assert "\ufffd" not in result.subject + (result.sender or "") + "".join(names), path.name


@pytest.mark.parametrize(("name", "subject", "sender", "files"), [
    # Ruby's mail gem reads this Apple Mail name as "ciële.txt"
    ("mail-attachment_nonascii_filename.eml", "testing", "foo@example.com", ["ci\u00eble.txt"]),
    # raw Windows-1252 in Subject; Python's email (policy.default) reads the same text
    ("mail-invalid_subject_characters.eml", "Forma\u00e7\u00e3o FrenetikPolis: Mega Campanha Final Ver\u00e3o | Cursos de Setembro",
     "info@formacaofrenetik.info", []),
    # Outlook 2000 folded the quoted boundary; mail-mime-parser finds three PNG parts
    ("mime-parser-m0021.eml", "Test message from Microsoft Outlook 00", "doug@example.com", ["blueball.png", "greenball.png", "redball.png"]),
])
def test_names_subjects_and_senders_match_the_reference(name: str, subject: str, sender: str, files: list[str]) -> None:
    result = extract(_read(name), EVERYTHING)
    assert result.subject == subject and result.sender == sender
    assert [a.original_filename for a in result.attachments] == files


def test_the_folded_boundary_sample_yields_real_png_bytes() -> None:
    result = extract(_read("mime-parser-m0021.eml"), EVERYTHING)
    assert all(a.data.startswith(b"\x89PNG") and a.kind == "image" for a in result.attachments)
    assert "mueller@example.com" in result.recipients


SUITES = sorted(p for folder in ("enmime", "mimekit", "mime4j") for p in (REAL / folder).iterdir()
                if p.suffix in {".raw", ".txt", ".eml", ".msg"})


def _reference_attachments(raw: bytes) -> list[str | None] | None:
    """What the standard library (policy.default) calls attachments, images and signatures aside."""
    import email
    import email.policy

    try:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        found = []
        for part in msg.walk():
            ctype = part.get_content_type()
            if part.is_multipart() or ctype.startswith("image/") or "signature" in ctype:
                continue
            name = part.get_filename()
            if name or part.get_content_disposition() == "attachment":
                found.append(name)
        return found
    except Exception:  # noqa: BLE001 - where the reference itself fails there is nothing to compare
        return None


def test_the_suites_are_here() -> None:
    assert len(SUITES) >= 165


@pytest.mark.parametrize("path", SUITES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_message_of_other_parsers_suites_is_read_and_nothing_is_lost(path: Path) -> None:
    raw = path.read_bytes()
    result = extract(raw, EVERYTHING)  # never raises
    ours = [a.original_filename for a in result.attachments] + [s.original_filename for s in result.skipped]
    expected = _reference_attachments(raw)
    if expected is not None:
        assert len(ours) >= len(expected), (ours, expected)
    for attachment in result.attachments:
        assert attachment.filename and "/" not in attachment.filename and attachment.size == len(attachment.data)


def test_the_address_scanner_reads_real_headers_as_the_library_does() -> None:
    import email
    from email.utils import getaddresses

    from imap_intake.mime import headers
    from imap_intake.mime.addresses import _distinct, scan

    compared, differ = 0, []
    for path in SUITES:
        msg = email.message_from_bytes(path.read_bytes(), policy=headers.POLICY)
        for name in ("From", "To", "Cc", "Reply-To", "Sender"):
            for value in msg.get_all(name, []):
                text = headers.text_of(headers.raw_bytes(value))
                try:
                    reference = _distinct([a for _d, a in getaddresses([text])])
                except RecursionError:
                    continue
                compared += 1
                if _distinct(scan(text)) != reference:
                    differ.append(text)
    assert compared > 250
    # The one difference: an unquoted display name that looks like an address (the library takes both).
    assert differ == ["jang.abcdef@xyzlinu <jang.abcdef@xyzlinux12345678.it>"]
