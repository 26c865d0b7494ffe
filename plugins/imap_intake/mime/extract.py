"""Extract purchase-order attachments from one raw message. Pure: bytes in, dataclasses out.

What counts as an attachment: a leaf part with a file name or ``Content-Disposition:
attachment``, or a non-text body part (application/*). Forwarded messages
(``message/rfc822``) are opened at any depth up to ``max_depth``. Inline images and
signatures are left out; inline PDFs are kept. winmail.dat is unpacked.
"""

from __future__ import annotations

import binascii
import email
import email.feedparser
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message

from imap_intake.mime import addresses, fast_tree, headers, tnef
from imap_intake.mime.filenames import safe_filename
from imap_intake.mime.sniff import sniff

SIGNATURE_TYPES = frozenset(
    {"application/pkcs7-signature", "application/x-pkcs7-signature", "application/pgp-signature"}
)
DEFAULT_ACCEPTED = frozenset({"pdf", "csv", "xlsx", "xml"})
MAX_PARTS = 500


@dataclass(frozen=True)
class Attachment:
    index: int
    original_filename: str
    filename: str
    declared_type: str
    kind: str
    data: bytes = field(repr=False)
    sha256: str
    size: int


@dataclass(frozen=True)
class SkippedPart:
    original_filename: str
    kind: str
    size: int
    reason: str


@dataclass(frozen=True)
class ExtractedMessage:
    message_id: str | None
    sender: str | None
    subject: str
    recipients: tuple[str, ...]
    forwarded_senders: tuple[str, ...]
    attachments: tuple[Attachment, ...]
    skipped: tuple[SkippedPart, ...]
    defects: tuple[str, ...]


@dataclass(frozen=True)
class Limits:
    max_attachment_bytes: int = 25 * 1024 * 1024
    accepted: frozenset[str] = DEFAULT_ACCEPTED
    max_depth: int = 20


def _header(msg: Message, name: str) -> str:
    try:
        return headers.decode(msg.get(name))[:998]
    except Exception:  # noqa: BLE001 - a header never stops the message; see headers.decode
        return ""


def _addresses(msg: Message, *names: str) -> tuple[str, ...]:
    values: list[str] = []
    for name in names:
        try:
            values += [headers.text_of(headers.raw_bytes(v)) for v in msg.get_all(name, [])]
        except Exception:  # noqa: BLE001
            continue
    return addresses.addresses(values)


def _sender(msg: Message) -> str | None:
    try:
        value = headers.text_of(headers.raw_bytes(msg.get("From")))
    except Exception:  # noqa: BLE001
        return None
    return addresses.sender(value)


def message_id_of(msg: Message) -> str | None:
    raw = _header(msg, "Message-ID")
    match = re.search(r"<([^<>\s]{1,500})>", raw)
    return match.group(1) if match else (raw[:500] or None)


def _filename(part: Message) -> str:
    """The part's name as sent: Content-Disposition's filename, else Content-Type's name."""
    for param, header in (("filename", "content-disposition"), ("name", "content-type")):
        try:
            value = part.get_param(param, header=header)
        except Exception:  # noqa: BLE001 - broken RFC 2231 parameters
            continue
        if value:
            return headers.decode_parameter(value)[:1000]
    return ""


def _base64_payload(part: Message) -> bytes | None:
    """A base64 body decoded straight from the parsed text: the bytes ``get_payload(decode=True)``
    returns, without its copies (the text encoded, split into lines, joined: ~4x the body at once).
    ``None`` when the body is not plain base64 or needs the email package's repairs (padding)."""
    if str(part.get("content-transfer-encoding", "")).lower() != "base64":  # the test get_payload makes
        return None
    text = part.get_payload()
    if not isinstance(text, str):
        return None
    try:
        return binascii.a2b_base64(text)  # skips line breaks and stray characters, as the email package does
    except (binascii.Error, ValueError):  # missing padding, non-ASCII: left to the email package
        return None


def _payload(part: Message) -> bytes:
    if isinstance(part, fast_tree.TreeMessage) and part.decoded is not None:
        return part.decoded
    fast = _base64_payload(part)
    if fast is not None:
        return fast
    try:
        data = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001 - truncated base64 and friends
        data = None
    if isinstance(data, bytes):
        return data
    raw = part.get_payload()
    return raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""


def _is_attachment(part: Message, filename: str, parent_type: str) -> bool:
    ctype = part.get_content_type()
    disposition = (part.get_content_disposition() or "").lower()
    if ctype in SIGNATURE_TYPES:
        return False
    if parent_type == "multipart/related" and ctype.startswith("image/"):
        return False  # logos and signatures embedded in an HTML body
    if disposition == "inline" and ctype.startswith("image/"):
        return False
    if disposition == "attachment" or filename:
        return True
    return ctype.startswith("application/") or ctype in {"text/csv", "text/xml"}


def _leaves(msg: Message, depth: int, limits: Limits, defects: list[str], senders: list[str], parent: str = "") -> Iterator[tuple[Message, str]]:
    ctype = msg.get_content_type()
    if ctype == "message/rfc822" or (ctype.startswith("message/") and msg.is_multipart()):
        if depth >= limits.max_depth:
            defects.append(f"forwarded messages nested deeper than {limits.max_depth}; inner ones not opened")
            return
        inner = msg.get_payload()
        for sub in inner if isinstance(inner, list) else []:
            if isinstance(sub, Message):
                sender = _sender(sub)
                if sender and sender not in senders:
                    senders.append(sender)
                yield from _leaves(sub, depth + 1, limits, defects, senders, ctype)
        return
    if msg.is_multipart():
        payload = msg.get_payload()
        for sub in payload if isinstance(payload, list) else []:
            if isinstance(sub, Message):
                yield from _leaves(sub, depth, limits, defects, senders, ctype)
        return
    yield msg, parent


TNEF_DEPTH = 3


class _Collector:
    """Sorts parts into attachments and skipped parts. A class, not a recursive closure: a closure
    that refers to itself is a reference cycle, and it kept every attachment's bytes alive until
    the cyclic garbage collector happened to run."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.attachments: list[Attachment] = []
        self.skipped: list[SkippedPart] = []
        self.index = 0
        self.tnef_depth = 0

    def _unpack_tnef(self, name: str, data: bytes) -> None:
        """Every part of a winmail.dat is considered or recorded as skipped with its reason."""
        if self.tnef_depth >= TNEF_DEPTH:
            self.skipped.append(SkippedPart(name, "tnef", len(data), f"winmail.dat nested deeper than {TNEF_DEPTH}; not opened"))
            return
        try:
            contents = tnef.unpack(data, max_total=self.limits.max_attachment_bytes)
        except tnef.TnefError as exc:
            self.skipped.append(SkippedPart(name, "tnef", len(data), f"winmail.dat not readable: {exc}"))
            return
        self.tnef_depth += 1
        try:
            for item in contents.files:
                if item.problem:
                    self.index += 1
                    self.skipped.append(SkippedPart(item.name, "unknown", len(item.data), item.problem))
                else:
                    self.consider(item.name, "application/octet-stream", item.data)
        finally:
            self.tnef_depth -= 1
        for problem in contents.problems:
            self.skipped.append(SkippedPart(name, "tnef", len(data), problem))
        if not contents.files and not contents.problems:
            # Nothing inside to store: say so, or the part would vanish without a record.
            what = ("winmail.dat holds no attachment (only Outlook's copy of the message body)" if self.tnef_depth == 0
                    else f"{contents.describe()} attached in a winmail.dat holds no attachment: not an order")
            self.skipped.append(SkippedPart(name, "tnef", len(data), what))

    def consider(self, name: str, declared: str, data: bytes) -> None:
        limits = self.limits
        self.index += 1
        kind = sniff(data, declared, name)
        if kind == "tnef":
            self._unpack_tnef(name, data)
            return
        if len(data) > limits.max_attachment_bytes:
            self.skipped.append(SkippedPart(name, kind, len(data), f"too large: {len(data)} bytes > limit {limits.max_attachment_bytes}"))
            return
        if kind not in limits.accepted:
            self.skipped.append(SkippedPart(name, kind, len(data), f"unsupported type: {kind} (accepted: {', '.join(sorted(limits.accepted))})"))
            return
        self.attachments.append(
            Attachment(
                index=self.index,
                original_filename=name,
                filename=safe_filename(name, kind=kind, index=self.index),
                declared_type=declared,
                kind=kind,
                data=data,
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
            )
        )


FEED_CHUNK = 64 * 1024


def _parse(raw: bytes) -> Message:
    """``email.message_from_bytes``, fed in chunks: the same feed parser and the same result, without
    the whole message as one str and as a StringIO (4 bytes per character) beside the bytes."""
    parser = email.feedparser.BytesFeedParser(policy=headers.POLICY)
    view = memoryview(raw)
    for start in range(0, len(raw), FEED_CHUNK):
        parser.feed(bytes(view[start : start + FEED_CHUNK]))
    return parser.close()


def extract(raw: bytes, limits: Limits = Limits(), *, compiled: bool = True) -> ExtractedMessage:
    """Parse ``raw`` and return its attachments, skipped parts and defects. Never raises on bad mail:
    a part that cannot be read becomes a skipped part with the reason.

    The compiled parser's tree is used where it reads as the email package does (see
    :mod:`imap_intake.mime.fast_tree`); ``compiled=False`` always takes the email package (the
    reference the two are compared with)."""
    msg = (fast_tree.parse(raw) if compiled else None) or _parse(raw)
    defects = [type(d).__name__ for d in getattr(msg, "defects", [])]
    collector = _Collector(limits)
    forwarded: list[str] = []
    try:
        for count, (part, parent) in enumerate(_leaves(msg, 0, limits, defects, forwarded)):
            if count >= MAX_PARTS:
                defects.append(f"more than {MAX_PARTS} parts; the rest were not read")
                break
            name = _filename(part)
            try:
                if _is_attachment(part, name, parent):
                    collector.consider(name, part.get_content_type(), _payload(part))
            except Exception as exc:  # noqa: BLE001 - recorded as a skipped part, with the reason
                collector.skipped.append(SkippedPart(name, "unknown", 0, f"part could not be read: {type(exc).__name__}: {exc}"[:500]))
    except RecursionError:
        defects.append("MIME structure nested too deeply; the rest was not read")
    return ExtractedMessage(
        message_id=message_id_of(msg),
        sender=_sender(msg),
        subject=_header(msg, "Subject"),
        recipients=_addresses(msg, "Delivered-To", "X-Original-To", "To", "Cc"),
        forwarded_senders=tuple(forwarded),
        attachments=tuple(collector.attachments),
        skipped=tuple(collector.skipped),
        defects=tuple(dict.fromkeys(defects)),
    )


def fingerprint(raw: bytes, message_id: str | None) -> str:
    """Identify a message across UIDs and folders.

    Message-ID plus a hash of everything after the header block: a re-delivered copy gains
    trace headers (Received, Delivered-To) but keeps its Message-ID and body. Without a
    Message-ID the whole raw message is hashed.
    """
    if message_id:
        split = re.search(rb"\r?\n\r?\n", raw)
        body = memoryview(raw)[split.end():] if split else memoryview(b"")  # hashed in place, not copied
        digest = hashlib.sha256(body).hexdigest()
        return "mid:" + hashlib.sha256(f"{message_id}\0{digest}".encode("utf-8", "surrogateescape")).hexdigest()
    return "raw:" + hashlib.sha256(raw).hexdigest()

