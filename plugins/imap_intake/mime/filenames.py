"""Safe file names: what we store is never a path, never hidden, never too long."""

from __future__ import annotations

import re
import unicodedata

MAX_NAME_BYTES = 180
_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')
EXTENSIONS = {"pdf": ".pdf", "csv": ".csv", "xlsx": ".xlsx", "xml": ".xml"}


def safe_filename(original: str | None, *, kind: str, index: int) -> str:
    """A storage-safe name: no separators, traversal or control characters; at most 180 UTF-8 bytes.

    The original stays in the ledger as data; this one only ever names a stored object.
    """
    name = unicodedata.normalize("NFC", original or "")
    name = name.replace("\u202e", "").replace("\u200f", "")  # bidi overrides hide real extensions
    name = _UNSAFE.sub("_", name).strip(" .")
    name = re.sub(r"\.{2,}", ".", name)
    if not name or name in {".", ".."}:
        name = f"attachment-{index}"
    extension = EXTENSIONS.get(kind, "")
    if extension and not name.lower().endswith(extension):
        name += extension
    encoded = name.encode("utf-8")
    if len(encoded) > MAX_NAME_BYTES:
        stem, dot, ext = name.rpartition(".")
        ext_bytes = (dot + ext).encode("utf-8") if dot and len(ext) <= 8 else b""
        budget = MAX_NAME_BYTES - len(ext_bytes)
        stem_bytes = (stem if ext_bytes else name).encode("utf-8")[:budget]
        name = stem_bytes.decode("utf-8", errors="ignore") + ext_bytes.decode("utf-8")
    return name
