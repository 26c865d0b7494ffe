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
