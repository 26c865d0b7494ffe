"""Header text as real mailers write it. Pure, linear, never raises.

Real mail carries raw 8-bit header bytes (RFC 6532 UTF-8, and Latin-1 / Windows-1252 from
Outlook and old mailers), encoded words in charsets Python knows under another name, raw
bytes inside encoded words, multi-byte characters split across adjacent encoded words, and
headers of thousands of encoded words. The parser keeps header values as raw strings (bytes
as surrogate escapes, folds removed: :class:`UnfoldingPolicy`); this module turns them into
text the way the reference decoders do: UTF-8 first, Windows-1252 as the fallback, declared
charsets through an alias table, adjacent words of one charset joined before decoding.

Why not ``email.policy.default``'s header parser: it is recursive and superlinear on hostile
headers (a To of thousands of encoded words), and it replaces undecodable bytes with U+FFFD
where the bytes are in fact decodable as Windows-1252. The decoding here is one regular
expression pass over at most ``MAX_HEADER_BYTES``, then length bounds on the decoded text.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from email.policy import Compat32

MAX_HEADER_BYTES = 256 * 1024
# Charset labels real mailers send, mapped to the codec that reads what they really mean
# (the WHATWG encoding standard's choices: superset codecs for mislabelled text).
CHARSET_ALIASES = {
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "euc-cn": "gb18030", "cp936": "gb18030",
    "iso-8859-8-i": "iso-8859-8", "iso-8859-8-e": "iso-8859-8", "iso-8859-6-i": "iso-8859-6",
    "iso-8859-6-e": "iso-8859-6", "logical": "iso-8859-8", "visual": "iso-8859-8",
    "ks_c_5601-1987": "cp949", "ks_c_5601": "cp949", "euc-kr": "cp949", "korean": "cp949",
    "shift_jis": "cp932", "shift-jis": "cp932", "x-sjis": "cp932", "sjis": "cp932", "ms_kanji": "cp932",
    "big5": "big5hkscs", "x-x-big5": "big5hkscs", "tis-620": "cp874", "windows-874": "cp874",
    "iso-8859-11": "cp874", "iso-8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252",
    "us-ascii": "cp1252", "ascii": "cp1252", "iso-8859-9": "cp1254", "utf8": "utf-8",
    "unicode-1-1-utf-7": "utf-7", "x-mac-roman": "mac-roman", "macintosh": "mac-roman",
    "x-user-defined": "cp1252", "unknown-8bit": "", "x-unknown": "", "unknown": "", "none": "",
    "default": "", "charset": "", "iso-2022-jp": "iso2022_jp_ext", "cp-850": "cp850", "ibm852": "cp852",
}
_ENCODED_WORD = re.compile(rb"=\?([^?\s]{1,80})\?([bBqQ])\?([^?]*)\?=")
_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
_BLANK = re.compile(rb"[ \t\r\n]*")
_SURROGATE = re.compile("[\udc80-\udcff]")


class UnfoldingPolicy(Compat32):
    """compat32, but header values come back unfolded and raw (8-bit bytes as surrogate escapes).

    Unfolding removes the line breaks of a folded header and keeps the white space (RFC 5322
    2.2.3), so a ``boundary`` parameter folded inside its quotes still matches the body's
    delimiter lines. Values are not turned into ``Header`` objects: :func:`decode` reads them.
    """

    def header_source_parse(self, sourcelines: list[str]) -> tuple[str, str]:
        name, value = sourcelines[0].split(":", 1)
        value = value.lstrip(" \t") + "".join(sourcelines[1:])
        return name, re.sub(r"\r?\n|\r", "", value)

    def header_fetch_parse(self, name: str, value: str) -> str:  # type: ignore[override]
        return value


POLICY = UnfoldingPolicy()


def raw_bytes(value: object) -> bytes:
    """The original bytes of a header value the parser kept as text (surrogate escapes)."""
    text = str(value if value is not None else "")
    return text.encode("utf-8", "surrogateescape")[:MAX_HEADER_BYTES]


def codec_for(charset: str | None) -> str:
    """The Python codec for a declared charset label; '' when unknown or meaningless."""
    label = (charset or "").strip().strip('"').lower().split("*", 1)[0]
    label = CHARSET_ALIASES.get(label, label)
    if not label:
        return ""
    try:
        return codecs.lookup(label).name
    except LookupError:
        return ""


def text_of(data: bytes, charset: str | None = None) -> str:
    """Decode bytes: the declared charset if it reads them, else UTF-8, else Windows-1252.

    Only bytes no candidate can read become U+FFFD (the declared charset, read leniently).
    """
    codec = codec_for(charset)
    for candidate in (codec, "utf-8"):
        if candidate:
            try:
                return data.decode(candidate)
            except UnicodeDecodeError as exc:
                if candidate == "utf-8" and exc.reason == "unexpected end of data":
                    return data[:exc.start].decode("utf-8", errors="replace") + "\ufffd"  # cut mid-character
            except LookupError:
                pass
    if codec and codec not in {"cp1252", "utf-8"}:
        return data.decode(codec, errors="replace")
    # cp1252 leaves five bytes undefined; Latin-1 reads those as the C1 controls they are.
    text = data.decode("cp1252", errors="surrogateescape")
    return _SURROGATE.sub(lambda m: chr(ord(m.group()) - 0xDC00), text)


def _word_bytes(encoding: bytes, payload: bytes) -> bytes:
    if encoding in (b"b", b"B"):
        cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", payload)
        cleaned = cleaned[: len(cleaned) - len(cleaned) % 4 if len(cleaned) % 4 == 1 else len(cleaned)]
        try:
            return base64.b64decode(cleaned + b"=" * (-len(cleaned) % 4))
        except (binascii.Error, ValueError):
            return payload
    return _QP_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), payload.replace(b"_", b" "))


def decode(value: object) -> str:
    """Header text: raw 8-bit bytes and encoded words (RFC 2047) decoded, white space folded.

    Linear in the header's length; adjacent encoded words in one charset are joined before
    decoding, so a character split across two words survives.
    """
    data = raw_bytes(value)
    if b"=?" not in data:
        return _tidy(text_of(data))
    pieces: list[str] = []
    run_charset: str | None = None
    run: list[bytes] = []
    position = 0

    def flush() -> None:
        nonlocal run, run_charset
        if run:
            pieces.append(text_of(b"".join(run), run_charset))
        run, run_charset = [], None

    for match in _ENCODED_WORD.finditer(data):
        between = data[position:match.start()]
        if between and not (run and _BLANK.fullmatch(between)):
            flush()
            pieces.append(text_of(between))
        charset = match.group(1).decode("ascii", "replace")
        if run and codec_for(charset) != codec_for(run_charset):
            flush()
        run_charset = charset
        run.append(_word_bytes(match.group(2), match.group(3)))
        position = match.end()
    flush()
    pieces.append(text_of(data[position:]))
    return _tidy("".join(pieces))


def _tidy(text: str) -> str:
    # Other control characters stay: the text is data here; the ledger's storable() decides what a
    # column can hold, and safe_filename() what a stored name may contain.
    return re.sub(r"[\r\n\t]+", " ", text).strip()


def decode_parameter(value: object) -> str:
    """A MIME parameter value (file name): RFC 2231 tuples, encoded words, raw 8-bit bytes."""
    if isinstance(value, tuple):
        charset, _language, text = value
        return _tidy(text_of(str(text).encode("latin-1", "surrogateescape"), charset))
    return decode(value)
