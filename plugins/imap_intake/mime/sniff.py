"""Decide what a part really is from its bytes, its declared type and its name.

A PDF sent as application/octet-stream is a PDF; a .docx renamed .xlsx is a .docx.
"""

from __future__ import annotations

import io
import zipfile

TNEF_MAGIC = b"\x78\x9f\x3e\x22"
KINDS = ("pdf", "csv", "xlsx", "xml", "docx", "zip", "tnef", "image", "text", "unknown")


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
    lines = [line for line in data[:8192].splitlines() if line.strip()][:6]
    if len(lines) < 2:
        return False
    for delimiter in (b";", b",", b"\t", b"|"):
        counts = {line.count(delimiter) for line in lines[:-1] or lines}
        if len(counts) == 1 and counts.pop() > 0:
            return True
    return False


def sniff(data: bytes, declared_type: str = "", filename: str = "") -> str:
    """Return one of ``KINDS``. The bytes win over the declared type and the name."""
    head = data[:1024]
    name = filename.lower()
    declared = declared_type.lower()
    if b"%PDF-" in head:
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(data)
    if head.startswith(TNEF_MAGIC):
        return "tnef"
    if head.startswith((b"\x89PNG", b"\xff\xd8\xff", b"GIF8")) or declared.startswith("image/"):
        return "image"
    if not _looks_textual(data):
        return "unknown"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"<?xml") or (stripped.startswith(b"<") and ("xml" in declared or name.endswith(".xml"))):
        return "xml"
    if "csv" in declared or "comma-separated" in declared or name.endswith((".csv", ".tsv")):
        return "csv"
    if name.endswith(".txt") and _looks_csv(data):
        return "csv"
    return "text"
