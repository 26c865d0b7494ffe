"""Decide what a part really is from its bytes, its declared type and its name.

A PDF sent as application/octet-stream is a PDF; a .docx renamed .xlsx is a .docx.
"""

from __future__ import annotations

import io
import zipfile

from imap_intake.orders.edi import is_edifact, is_x12

TNEF_MAGIC = b"\x78\x9f\x3e\x22"
KINDS = ("pdf", "csv", "xlsx", "xml", "edi", "docx", "zip", "tnef", "image", "text", "unknown")


def _zip_kind(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist()[:2000])
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        return "unknown"
    if "xl/workbook.xml" in names:
        return "xlsx"
    if "word/document.xml" in names:
        return "docx"
    return "zip"


def _looks_textual(data: bytes) -> bool:
    sample = data[:8192]
    if b"\x00" in sample:
        return False
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A cut in the middle of a multi-byte character at the end of the sample is fine.
        if exc.start < len(sample) - 4:
            try:
                sample.decode("cp1252")
            except UnicodeDecodeError:
                return False
    return True


def _looks_csv(data: bytes) -> bool:
    """Tabular text: one delimiter, the same count of it on every sampled line, two columns or
    more, and fields that are values rather than sentences. Prose with commas is not an order."""
    sample = data[:8192]
    lines = [line for line in sample.splitlines() if line.strip()]
    if len(data) > len(sample) and len(lines) > 1:
        lines = lines[:-1]  # the sample may have cut the last line short
    lines = lines[:50]
    if len(lines) < 2:
        return False
    for delimiter in (b";", b",", b"\t", b"|"):
        counts = {line.count(delimiter) for line in lines}
        if len(counts) != 1 or counts.pop() == 0:
            continue
        fields = [field.strip() for line in lines for field in line.split(delimiter)]
        words = sum(len(field.split()) for field in fields) / len(fields)
        sentences = sum(1 for line in lines if line.rstrip().endswith((b".", b"!", b"?")))
        if words <= 3 and sentences * 2 <= len(lines):
            return True
    return False


def sniff(data: bytes, declared_type: str = "", filename: str = "") -> str:
    """Return one of ``KINDS``. The bytes win over the declared type and the name."""
    head = data[:1024]
    name = filename.lower()
    declared = declared_type.lower()
    # Containers first: a winmail.dat or a zip whose first member is a small PDF has "%PDF-"
    # in its first kilobyte too.
    if head.startswith(TNEF_MAGIC):
        return "tnef"
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(data)
    if b"%PDF-" in head:
        return "pdf"
    if head.startswith((b"\x89PNG", b"\xff\xd8\xff", b"GIF8")) or declared.startswith("image/"):
        return "image"
    if not _looks_textual(data):
        return "unknown"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if is_x12(stripped) or is_edifact(stripped):
        return "edi"  # whatever the name: .edi, .x12, .txt or none
    if stripped.startswith(b"<?xml") or (stripped.startswith(b"<") and ("xml" in declared or name.endswith(".xml"))):
        return "xml"
    if "csv" in declared or "comma-separated" in declared or name.endswith((".csv", ".tsv")):
        return "csv"
    if name.endswith(".txt") and _looks_csv(data):
        return "csv"
    return "text"
