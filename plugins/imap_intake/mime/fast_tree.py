"""A message's MIME tree from a compiled parser, accepted only where it reads as the email package does.

The email package's feed parser is the reference: it reads damaged real-world mail the way the
rest of the mail world does, and :mod:`imap_intake.mime.extract` was measured against it. It is
also slow, a Python loop over every line of every body (about 1 ms for a message with a 30 KB
PDF). `fast-mail-parser` (a Rust parser) reads the same message in about 0.03 ms and keeps the
tree: each part's content type, headers, decoded content and children.

:func:`parse` builds the tree the extractor walks (``email.message.Message`` objects, so the
extractor's rules for types, names and dispositions are the same code on both paths) and
returns ``None`` — the caller then uses the email package — unless every check below holds:

* the top-level headers are the email package's own parse of the header block, without defects;
* every part's ``Content-Type``, ``Content-Disposition`` and ``Content-Transfer-Encoding`` and a
  forwarded message's ``From`` occur verbatim as one unfolded ASCII line of the raw message, so
  the value is the one the email package would read (not one the compiled parser decoded,
  unfolded or repaired);
* both parsers name the same content type for every part;
* every multipart has a boundary, its parts are exactly the delimiter lines the email package
  would find (counted in the raw bytes), and a close delimiter;
* no multipart/digest (other default types), no ``message/*`` but ``message/rfc822``, no
  transfer encoding on a container, and a part that can become an attachment is in base64,
  7bit, 8bit or binary: the encodings both decoders read to the same bytes.

``tests/mime/test_fast_tree.py`` compares the two paths on real mailers' messages, damaged
copies of them and generated structures: wherever this returns a tree, the extraction is equal.
"""

from __future__ import annotations

import re
from email.message import Message
from email.parser import BytesHeaderParser

from imap_intake.mime import headers

try:  # an optional speed-up: without it every message takes the email package's path
    import fast_mail_parser
except ImportError:  # pragma: no cover - the lock installs it
    fast_mail_parser = None  # type: ignore[assignment]

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_CHECKED = frozenset({"content-type", "content-disposition", "content-transfer-encoding"})
_WITH_SENDER = _CHECKED | {"from"}
SAME_BYTES = frozenset({"", "7bit", "8bit", "binary", "base64"})
CONTAINER_ENCODINGS = frozenset({"", "7bit", "8bit", "binary"})
BODY_TYPES = frozenset({"text/plain", "text/html"})


class TreeMessage(Message):
    """A part of a tree built here: ``decoded`` holds a leaf's transfer-decoded bytes."""

    decoded: bytes | None = None


class _Rejected(Exception):
    """This message is left to the email package."""


def available() -> bool:
    return fast_mail_parser is not None


def parse(raw: bytes) -> TreeMessage | None:
    """The message's tree, or ``None`` when the email package must read it (see the module doc)."""
    if fast_mail_parser is None:
        return None
    split = _HEADER_END.search(raw)
    if split is None:
        return None
    root = BytesHeaderParser(_class=TreeMessage, policy=headers.POLICY).parsebytes(raw[: split.end()])
    if root.defects or not isinstance(root, TreeMessage):
        return None
    try:
        tree = fast_mail_parser.parse_email_tree(raw)
    except Exception:  # noqa: BLE001 - ParseError and friends: the reference reads what it can
        return None
    except BaseException as exc:  # a Rust panic arrives as pyo3's PanicException (a BaseException)
        if isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit)):
            raise
        return None
    try:
        _adopt(root, tree, raw, {})
    except _Rejected:
        return None
    return root


def _adopt(msg: TreeMessage, node: object, raw: bytes, lines: dict[str, dict[str, set[str]]]) -> None:
    """Give ``msg`` (headers already set) the payload of the compiled parser's ``node``."""
    ctype = msg.get_content_type()
    if ctype != str(getattr(node, "content_type", "")).lower():
        raise _Rejected
    children = list(getattr(node, "children", []))
    encoding = str(msg.get("content-transfer-encoding", "")).lower()
    maintype = ctype.split("/", 1)[0]
    if maintype == "multipart":
        boundary = msg.get_boundary()
        if ctype == "multipart/digest" or not children or not boundary or encoding not in CONTAINER_ENCODINGS:
            raise _Rejected
        if _delimiters(raw, boundary.encode("ascii", "surrogateescape")) != len(children):
            raise _Rejected
        parts: list[Message | str] = []
        for child in children:
            part = _part(child, raw, lines)
            _adopt(part, child, raw, lines)
            parts.append(part)
        msg.set_payload(parts)
        return
    if maintype == "message":
        if ctype != "message/rfc822" or not getattr(node, "is_message", False) or len(children) != 1:
            raise _Rejected
        if encoding not in CONTAINER_ENCODINGS:
            raise _Rejected
        inner = _part(children[0], raw, lines, sender=True)
        _adopt(inner, children[0], raw, lines)
        msg.set_payload([inner])  # a one-part list, as the email package leaves a parsed message/rfc822
        return
    if children or encoding not in SAME_BYTES and not _body_text(msg, ctype):
        raise _Rejected
    content = getattr(node, "content", None)
    if not isinstance(content, bytes):
        raise _Rejected
    msg.decoded = content


def _body_text(msg: Message, ctype: str) -> bool:
    """A text body the extractor never keeps (its bytes are not used, so its decoding may differ)."""
    if ctype not in BODY_TYPES or (msg.get_content_disposition() or "") == "attachment":
        return False
    return not (msg.get_param("filename", header="content-disposition") or msg.get_param("name"))


def _part(node: object, raw: bytes, lines: dict[str, dict[str, set[str]]], *, sender: bool = False) -> TreeMessage:
    """A part with the headers the extractor reads, each value taken from the raw header line the
    compiled parser read it from, as the email package unfolds it."""
    part = TreeMessage(policy=headers.POLICY)
    wanted = _WITH_SENDER if sender else _CHECKED
    found: dict[str, list[tuple[str, str]]] = {}
    for name, values in getattr(node, "headers", {}).items():
        key = str(name).lower()
        if key in wanted:
            found.setdefault(key, []).extend((str(name), str(value)) for value in values)
    for pairs in found.values():
        if len(pairs) != 1:
            raise _Rejected  # the email package reads the first of several; which is first is not known here
        name, value = pairs[0]
        if name not in lines:
            by_squeezed: dict[str, set[str]] = {}
            for line in _header_lines(raw, name):
                by_squeezed.setdefault(_squeezed(line), set()).add(line)
            lines[name] = by_squeezed
        same = lines[name].get(_squeezed(value), ())
        if len(same) != 1:
            raise _Rejected
        part[name] = next(iter(same))
    return part


def _squeezed(value: str) -> str:
    return " ".join(value.split())


def _header_lines(raw: bytes, name: str) -> list[str]:
    """Every ``name:`` header line of ``raw`` (at a line start, folds included), unfolded as
    :class:`headers.UnfoldingPolicy` does; values that are not plain ASCII are left out."""
    if not name.isascii():
        return []
    needle = b"\n" + name.encode("ascii") + b":"
    values = []
    start = raw.find(needle)
    while start >= 0:
        end = raw.find(b"\n", start + len(needle))
        while end >= 0 and raw[end + 1 : end + 2] in (b" ", b"\t"):
            end = raw.find(b"\n", end + 1)
        text = raw[start + len(needle) : end if end >= 0 else len(raw)]
        if text.isascii() and b"\r" not in text.replace(b"\r\n", b"").rstrip(b"\r"):
            values.append(text.decode("ascii").lstrip(" \t").replace("\r\n", "").replace("\n", "").rstrip("\r"))
        start = raw.find(needle, start + 1)
    return values


def _delimiters(raw: bytes, boundary: bytes) -> int:
    """How many parts the email package finds between this boundary's delimiter lines (``--b``, then
    ``--`` for the close, then spaces or tabs, then the line end); -1 without a close delimiter or
    with a delimiter after it. Counted over the whole message, so a boundary used twice is -1 too."""
    needle = b"\n--" + boundary
    parts = 0
    closed = False
    start = raw.find(needle)
    while start >= 0:
        after = start + len(needle)
        close = raw[after : after + 2] == b"--"
        for candidate in ((after + 2, True), (after, False)) if close else ((after, False),):
            position, is_close = candidate
            while raw[position : position + 1] in (b" ", b"\t"):
                position += 1
            if position == len(raw) or raw[position : position + 1] == b"\n" or raw[position : position + 2] == b"\r\n":
                if closed:
                    return -1  # a delimiter after the close: the email package reads it as epilogue
                closed = closed or is_close
                parts += 0 if is_close else 1
                break
        start = raw.find(needle, start + 1)
    return parts if closed else -1
