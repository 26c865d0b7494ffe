"""Unpack attachments from Outlook's winmail.dat (TNEF). Pure and bounded."""

from __future__ import annotations

import struct
from dataclasses import dataclass

MAGIC = 0x223E9F78
LVL_ATTACHMENT = 0x02
ATT_ATTACH_REND_DATA = 0x9002
ATT_ATTACH_TITLE = 0x8010
ATT_ATTACH_DATA = 0x800F
MAX_ATTACHMENTS = 100


@dataclass(frozen=True)
class TnefFile:
    name: str
    data: bytes


class TnefError(ValueError):
    pass


def unpack(data: bytes, *, max_total: int) -> list[TnefFile]:
    """Return the attachments of a TNEF stream; never more bytes in total than ``max_total``."""
    if len(data) < 6 or struct.unpack_from("<I", data, 0)[0] != MAGIC:
        raise TnefError("not a TNEF stream")
    pos = 6
    files: list[TnefFile] = []
    name: str | None = None
    payload: bytes | None = None
    total = 0

    def flush() -> None:
        nonlocal name, payload
        if payload is not None:
            files.append(TnefFile(name or f"winmail-{len(files) + 1}", payload))
        name, payload = None, None

    while pos + 9 <= len(data):
        level = data[pos]
        attr, length = struct.unpack_from("<II", data, pos + 1)
        start = pos + 9
        end = start + length
        if end + 2 > len(data):
            raise TnefError("truncated TNEF attribute")
        value = data[start:end]
        pos = end + 2  # checksum
        if level != LVL_ATTACHMENT:
            continue
        attr_id = attr & 0xFFFF
        if attr_id == ATT_ATTACH_REND_DATA:
            flush()
            if len(files) >= MAX_ATTACHMENTS:
                raise TnefError(f"more than {MAX_ATTACHMENTS} attachments in winmail.dat")
        elif attr_id == ATT_ATTACH_TITLE:
            name = value.split(b"\x00", 1)[0].decode("cp1252", errors="replace")
        elif attr_id == ATT_ATTACH_DATA:
            total += len(value)
            if total > max_total:
                raise TnefError("winmail.dat expands past the attachment size limit")
            payload = value
    flush()
    return files


def pack(files: list[TnefFile]) -> bytes:
    """Build a minimal TNEF stream (used by tests and the demo mailbox)."""

    def attribute(level: int, attr: int, value: bytes) -> bytes:
        checksum = sum(value) & 0xFFFF
        return struct.pack("<BII", level, attr, len(value)) + value + struct.pack("<H", checksum)

    out = struct.pack("<IH", MAGIC, 0x0001)
    for item in files:
        out += attribute(LVL_ATTACHMENT, 0x00060000 | ATT_ATTACH_REND_DATA, b"\x01\x00\x00\x00" * 4)
        out += attribute(LVL_ATTACHMENT, 0x00010000 | ATT_ATTACH_TITLE, item.name.encode("cp1252", "replace") + b"\x00")
        out += attribute(LVL_ATTACHMENT, 0x00060000 | ATT_ATTACH_DATA, item.data)
    return out
