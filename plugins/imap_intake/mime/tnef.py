"""Unpack attachments from Outlook's winmail.dat (TNEF, [MS-OXTNEF]). Pure and bounded.

An attachment's bytes come from ``attAttachData`` or, where Outlook put them in the MAPI
attachment properties (``attAttachment``), from ``PR_ATTACH_DATA_BIN`` / ``PR_ATTACH_DATA_OBJ``.
Its name is the first of ``PR_ATTACH_LONG_FILENAME``, ``PR_DISPLAY_NAME``,
``PR_ATTACH_FILENAME`` and the 8.3 ``attAttachTitle``; 8-bit names are decoded with the
message's code page (``attOemCodepage``). A damaged stream keeps every attachment completed
before the damage and says what was lost: nothing disappears without a reason.

Measured against tnefparse on the public TNEF test files of tnefparse and verdammelt/tnef:
the same names and sizes on every file, and no attachment dropped where tnefparse raised or
lost one to a truncated attribute (see tests/mime/test_tnef.py).
"""

from __future__ import annotations

import codecs
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

MAGIC = 0x223E9F78
LVL_MESSAGE = 0x01
LVL_ATTACHMENT = 0x02
ATT_ATTACH_REND_DATA = 0x9002
ATT_ATTACH_TITLE = 0x8010
ATT_ATTACH_DATA = 0x800F
ATT_ATTACHMENT = 0x9005  # the attachment's MAPI properties
ATT_OEM_CODEPAGE = 0x9007
ATT_MESSAGE_CLASS = 0x8008  # e.g. IPM.Note, IPM.DistList: what kind of Outlook item the stream is
MAX_ATTACHMENTS = 100
MAX_PROPERTIES = 10_000

# MAPI property ids and types ([MS-OXPROPS], [MS-OXCDATA] 2.11.1)
PR_DISPLAY_NAME = 0x3001
PR_ATTACH_DATA = 0x3701  # PT_BINARY: PR_ATTACH_DATA_BIN; PT_OBJECT: PR_ATTACH_DATA_OBJ
PR_ATTACH_FILENAME = 0x3704
PR_ATTACH_LONG_FILENAME = 0x3707
PT_OBJECT = 0x000D
PT_STRING8 = 0x001E
PT_UNICODE = 0x001F
PT_BINARY = 0x0102
MV_FLAG = 0x1000
_FIXED = {0x0002: 2, 0x000B: 2, 0x0003: 4, 0x0004: 4, 0x000A: 4, 0x0005: 8, 0x0006: 8, 0x0007: 8,
          0x0014: 8, 0x0040: 8, 0x0048: 16, 0x0001: 0, 0x0000: 0}
_VARIABLE = {PT_STRING8, PT_UNICODE, PT_BINARY, PT_OBJECT, 0x00FB, 0x00FD, 0x00FE}
IMESSAGE_IID = b"\x07\x03\x02\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46"


@dataclass(frozen=True)
class TnefFile:
    """One attachment. ``problem`` set: it could not be salvaged whole, and says why."""

    name: str
    data: bytes = field(repr=False)
    problem: str | None = None


@dataclass(frozen=True)
class TnefContents:
    files: tuple[TnefFile, ...]
    problems: tuple[str, ...]  # damage that cost no attachment of its own (e.g. garbage at the end)
    message_class: str = ""  # attMessageClass: IPM.Note for mail, IPM.DistList, IPM.Contact, ...

    def describe(self) -> str:
        """What kind of Outlook item this is, in words (for a stream that holds no file)."""
        item = self.message_class
        for prefix, words in ITEM_KINDS:
            if item.upper().startswith(prefix):
                return f"{words} ({item})"
        return f"an Outlook item ({item})" if item else "an Outlook item"


#: Outlook item classes ([MS-OXCMSG] PidTagMessageClass), most specific first.
ITEM_KINDS = (
    ("IPM.DISTLIST", "a distribution list"), ("IPM.CONTACT", "a contact"), ("IPM.APPOINTMENT", "an appointment"),
    ("IPM.SCHEDULE.MEETING", "a meeting request or response"), ("IPM.TASK", "a task"), ("IPM.STICKYNOTE", "a note"),
    ("IPM.ACTIVITY", "a journal entry"), ("REPORT.", "a delivery report"), ("IPM.NOTE", "an e-mail"),
    ("IPM", "an Outlook item"),
)


class TnefError(ValueError):
    pass


def _pad4(n: int) -> int:
    return (n + 3) & ~3


def _text(raw: bytes, codepage: str) -> str:
    return raw.split(b"\x00", 1)[0].decode(codepage, errors="replace").strip()


def _codepage(number: int) -> str:
    name = "utf-8" if number == 65001 else f"cp{number}"
    try:
        codecs.lookup(name)
    except LookupError:
        return "cp1252"
    return name


def mapi_properties(data: bytes, codepage: str) -> dict[int, tuple[int, bytes | str]]:
    """The single-valued properties of a MAPI property list, by id: (type, value).

    Strings come back decoded, binaries and objects as bytes. Stops quietly at the first
    property that runs past the end: what was read before it is kept.
    """
    found: dict[int, tuple[int, bytes | str]] = {}
    if len(data) < 4:
        return found
    count = struct.unpack_from("<I", data, 0)[0]
    pos = 4
    for _ in range(min(count, MAX_PROPERTIES)):
        if pos + 4 > len(data):
            break
        ptype, pid = struct.unpack_from("<HH", data, pos)
        pos += 4
        if pid >= 0x8000:  # named property: GUID, kind, then an id or a UTF-16 name
            if pos + 20 > len(data):
                break
            kind = struct.unpack_from("<I", data, pos + 16)[0]
            pos += 20
            if kind == 0:
                pos += 4
            else:
                if pos + 4 > len(data):
                    break
                pos += 4 + _pad4(struct.unpack_from("<I", data, pos)[0])
        multi = bool(ptype & MV_FLAG)
        base = ptype & ~MV_FLAG
        values = 1
        if multi or base in _VARIABLE:
            if pos + 4 > len(data):
                break
            values = struct.unpack_from("<I", data, pos)[0]
            pos += 4
        if base in _FIXED:
            width = _FIXED[base]
            span = width * values if multi else max(width, 4) if width else 0
            pos += _pad4(span)
            continue
        if base not in _VARIABLE:
            break  # an unknown type: its length cannot be known, so nothing after it can be read
        value: bytes | None = None
        for _index in range(min(values, MAX_PROPERTIES)):
            if pos + 4 > len(data):
                return found
            length = struct.unpack_from("<I", data, pos)[0]
            pos += 4
            if pos + length > len(data):
                return found
            value = value if value is not None else data[pos:pos + length]
            pos += _pad4(length)
        if value is None or multi:
            continue
        if base == PT_UNICODE:
            found[pid] = (base, value.decode("utf-16-le", errors="replace").split("\x00", 1)[0].strip())
        elif base == PT_STRING8:
            found[pid] = (base, _text(value, codepage))
        else:
            found[pid] = (base, value)
    return found


class _Attachment:
    def __init__(self, number: int) -> None:
        self.number = number
        self.title = ""
        self.data: bytes | None = None
        self.properties: dict[int, tuple[int, bytes | str]] = {}
        self.problem: str | None = None

    def name(self) -> str:
        for pid in (PR_ATTACH_LONG_FILENAME, PR_DISPLAY_NAME, PR_ATTACH_FILENAME):
            value = self.properties.get(pid, (0, ""))[1]
            if isinstance(value, str) and value:
                return value
        return self.title or f"winmail-{self.number}"

    def payload(self) -> bytes | None:
        kind, value = self.properties.get(PR_ATTACH_DATA, (0, b""))
        if isinstance(value, bytes) and kind == PT_OBJECT and value.startswith(IMESSAGE_IID):
            return value[16:]  # an embedded Outlook message: a TNEF stream of its own, opened in turn
        if self.data:
            return self.data
        if isinstance(value, bytes) and value:
            return value[16:] if kind == PT_OBJECT else value  # an object starts with its interface id
        return self.data


def unpack(data: bytes, *, max_total: int) -> TnefContents:
    """The attachments of a TNEF stream; never more bytes in total than ``max_total``.

    Raises ``TnefError`` only when ``data`` is not TNEF at all.
    """
    if len(data) < 6 or struct.unpack_from("<I", data, 0)[0] != MAGIC:
        raise TnefError("not a TNEF stream")
    pos = 6
    codepage = "cp1252"
    message_class = ""
    pending: list[_Attachment] = []
    problems: list[str] = []
    current: _Attachment | None = None
    while pos < len(data):
        if pos + 9 > len(data):
            problems.append(f"winmail.dat has {len(data) - pos} stray byte(s) at its end; ignored")
            break
        level = data[pos]
        attr, length = struct.unpack_from("<II", data, pos + 1)
        start = pos + 9
        end = start + length
        if level not in (LVL_MESSAGE, LVL_ATTACHMENT):
            problems.append(f"winmail.dat is damaged at byte {pos} (unknown attribute level {level}); read up to there")
            break
        if end > len(data):
            lost = f"winmail.dat is truncated at byte {pos} (attribute 0x{attr & 0xFFFF:04x} needs {length} bytes)"
            if current is not None and level == LVL_ATTACHMENT:
                current.problem = lost  # this attachment is incomplete; the ones before it are whole
            else:
                problems.append(lost + "; read up to there")
            break
        value = data[start:end]
        pos = end + 2  # the checksum is not checked: a wrong one costs nothing we can repair
        attr_id = attr & 0xFFFF
        if level == LVL_MESSAGE:
            if attr_id == ATT_OEM_CODEPAGE and len(value) >= 4:
                codepage = _codepage(struct.unpack_from("<I", value, 0)[0])
            elif attr_id == ATT_MESSAGE_CLASS:
                message_class = _text(value, "cp1252")[:200]
            continue
        if attr_id == ATT_ATTACH_REND_DATA or current is None:
            if len(pending) >= MAX_ATTACHMENTS:
                problems.append(f"winmail.dat has more than {MAX_ATTACHMENTS} attachments; the rest were not read")
                break
            current = _Attachment(len(pending) + 1)
            pending.append(current)
        if attr_id == ATT_ATTACH_TITLE:
            current.title = _text(value, codepage)
        elif attr_id == ATT_ATTACH_DATA:
            current.data = value
        elif attr_id == ATT_ATTACHMENT:
            current.properties.update(mapi_properties(value, codepage))
    return TnefContents(tuple(_files(pending, max_total)), tuple(problems), message_class)


def _files(pending: list[_Attachment], max_total: int) -> list[TnefFile]:
    files: list[TnefFile] = []
    total = 0
    for item in pending:
        payload = item.payload()
        name = item.name()
        if item.problem:
            files.append(TnefFile(name, b"", item.problem))
        elif payload is None:
            files.append(TnefFile(name, b"", "winmail.dat attachment carries no data (a link or an empty Outlook item)"))
        elif total + len(payload) > max_total:
            files.append(TnefFile(name, b"", f"winmail.dat expands past the attachment size limit ({max_total} bytes)"))
        else:
            total += len(payload)
            files.append(TnefFile(name, payload))
    return files


def pack(files: list[TnefFile], *, codepage: int = 1252, long_names: bool = False, message_class: str = "",
         embedded: Sequence[tuple[str, bytes]] = ()) -> bytes:
    """Build a TNEF stream (used by tests and the demo mailbox).

    ``long_names``: also write the MAPI properties an Outlook does, the long file name and
    the bytes in PR_ATTACH_DATA_BIN (no attAttachData), as real winmail.dat files often have.
    ``embedded``: (display name, TNEF stream) of attached Outlook items, as PR_ATTACH_DATA_OBJ.
    """

    def attribute(level: int, attr: int, value: bytes) -> bytes:
        checksum = sum(value) & 0xFFFF
        return struct.pack("<BII", level, attr, len(value)) + value + struct.pack("<H", checksum)

    def variable(ptype: int, pid: int, raw: bytes) -> bytes:
        return struct.pack("<HHII", ptype, pid, 1, len(raw)) + raw + b"\x00" * (_pad4(len(raw)) - len(raw))

    out = struct.pack("<IH", MAGIC, 0x0001)
    out += attribute(LVL_MESSAGE, 0x00069007, struct.pack("<II", codepage, 0))
    if message_class:
        out += attribute(LVL_MESSAGE, 0x00070000 | ATT_MESSAGE_CLASS, message_class.encode() + b"\x00")
    for item in files:
        short = item.name.encode(f"cp{codepage}", "replace")
        out += attribute(LVL_ATTACHMENT, 0x00060000 | ATT_ATTACH_REND_DATA, b"\x01\x00\x00\x00" * 4)
        if long_names:
            stem, _dot, ext = item.name.rpartition(".")
            out += attribute(LVL_ATTACHMENT, 0x00010000 | ATT_ATTACH_TITLE, f"{stem[:6]}~1.{ext[:3]}".upper().encode(f"cp{codepage}", "replace") + b"\x00")
            props = variable(PT_UNICODE, PR_ATTACH_LONG_FILENAME, item.name.encode("utf-16-le") + b"\x00\x00")
            props += variable(PT_BINARY, PR_ATTACH_DATA, item.data)
            out += attribute(LVL_ATTACHMENT, 0x00060000 | ATT_ATTACHMENT, struct.pack("<I", 2) + props)
        else:
            out += attribute(LVL_ATTACHMENT, 0x00010000 | ATT_ATTACH_TITLE, short + b"\x00")
            out += attribute(LVL_ATTACHMENT, 0x00060000 | ATT_ATTACH_DATA, item.data)
    for name, stream in embedded:
        out += attribute(LVL_ATTACHMENT, 0x00060000 | ATT_ATTACH_REND_DATA, b"\x05\x00\x00\x00" * 4)
        props = variable(PT_UNICODE, PR_DISPLAY_NAME, name.encode("utf-16-le") + b"\x00\x00")
        props += variable(PT_OBJECT, PR_ATTACH_DATA, IMESSAGE_IID + stream)
        out += attribute(LVL_ATTACHMENT, 0x00060000 | ATT_ATTACHMENT, struct.pack("<I", 2) + props)
    return out
