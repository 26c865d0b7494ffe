"""Random MIME messages as real and broken mailers write them, for comparing two readings of the same bytes.

Seeded (``random.Random``), so a failure names the seed that reproduces it. Each message is built
from a tree of parts with the variations real mail has: folded and duplicated headers, header names
in any case, RFC 2231 and encoded-word names, raw 8-bit bytes, every transfer encoding (some of it
damaged), boundaries that are prefixes of each other, delimiter-like lines in bodies, missing close
delimiters, forwarded messages, digests, LF or CRLF line ends.
"""

from __future__ import annotations

import base64
import quopri
import random

TYPES = ["application/pdf", "text/csv", "text/plain", "text/html", "image/png", "application/octet-stream",
         "text/xml", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "application/ms-tnef",
         "pdf", "application/PDF", "message/delivery-status", "message/global"]
NAMES = ["PO-1.pdf", "order 2.csv", "Bestellung_\u00e4.pdf", "a" * 90 + ".pdf", "x.xlsx", "po.xml", "", "",
         "=?utf-8?b?UE8tMy5wZGY=?=", "=?iso-8859-1?q?Auftrag_=E4.csv?=", "../../etc/passwd", "winmail.dat"]
ENCODINGS = ["", "7bit", "8bit", "binary", "base64", "BASE64", "base64 ", "quoted-printable", "x-uuencode", "bogus"]
BOUNDARIES = ["B", "B1", "B-1", "=_NextPart_000", "=_NextPart_000_0001", "----=_Part_1", "a b", "simple boundary"]
BODIES = [b"%PDF-1.4\n% order\n1 0 obj <<>> endobj\n%%EOF\n", b"SKU,Qty\r\nA-1,2\r\nB-2,5\r\n",
          b'<?xml version="1.0"?><Order><ID>7</ID></Order>', b"\x89PNG\r\n\x1a\n" + bytes(range(256)),
          "Grüße, ünïcödé\r\n".encode(), b"=3D not qp =\r\n--B\r\n-- B1\r\nx" * 3, b"", b"\x00\xff" * 40]


class Generator:
    def __init__(self, seed: int, damage: float = 1.0) -> None:
        self.rnd = random.Random(seed)
        self.damage = damage

    def chance(self, p: float) -> bool:
        return self.rnd.random() < p

    def broken(self, p: float) -> bool:
        """A damage that happens with probability ``p`` scaled by the generator's ``damage``."""
        return self.rnd.random() < p * self.damage

    def pick(self, items):  # type: ignore[no-untyped-def]
        return self.rnd.choice(items)

    def header(self, name: str, value: str) -> bytes:
        spelled = self.pick([name, name, name.lower(), name.upper()])
        separator = self.pick([": ", ": ", ":", ":\t", ":  "])
        if self.chance(0.4) and "; " in value:  # folded where a mailer would fold
            value = value.replace("; ", self.pick([";\r\n\t", ";\r\n ", ";  \r\n   "]), 1)
        trailing = " " if self.broken(0.25) else ""
        return f"{spelled}{separator}{value}{trailing}\r\n".encode("utf-8", "surrogateescape")

    def name_params(self, ctype: str) -> tuple[str, str | None]:
        name = self.pick(NAMES)
        if not name:
            return ctype, self.pick([None, "inline", "attachment"])
        quoted = f'"{name}"' if self.chance(0.8) else name
        if self.chance(0.15):
            quoted = "utf-8''" + "".join(c if c.isalnum() or c in ".-" else f"%{ord(c):02X}" for c in name)
            return ctype, f"attachment; filename*={quoted}"
        disposition = self.pick([None, "attachment", "inline", "ATTACHMENT"])
        ctype = f"{ctype}; name={quoted}" if self.chance(0.7) else ctype
        if disposition is not None and self.chance(0.8):
            disposition = f"{disposition}; filename={quoted}"
        return ctype, disposition

    def encode(self, body: bytes, encoding: str) -> bytes:
        kind = encoding.strip().lower()
        if kind == "base64":
            text = base64.encodebytes(body).replace(b"\n", b"\r\n")
            if self.broken(0.1):
                text = text.rstrip(b"=\r\n") + b"\r\n"  # padding lost
            if self.broken(0.1) and text:
                cut = self.rnd.randrange(len(text))
                text = text[:cut] + self.pick([b"!", b"\xe9", b" ", b"=="]) + text[cut:]
            return text
        if kind == "quoted-printable":
            return quopri.encodestring(body).replace(b"\n", b"\r\n")
        return body

    def leaf(self) -> bytes:
        ctype, disposition = self.name_params(self.pick(TYPES))
        encoding = self.pick(ENCODINGS)
        lines = [] if self.broken(0.05) else [self.header("Content-Type", ctype)]
        if disposition:
            lines.append(self.header("Content-Disposition", disposition))
        if encoding:
            lines.append(self.header("Content-Transfer-Encoding", encoding))
        if self.broken(0.05):
            lines.append(self.header("Content-Type", "text/plain"))  # a second one
        return b"".join(lines) + b"\r\n" + self.encode(self.pick(BODIES), encoding)

    def multipart(self, depth: int) -> bytes:
        subtype = self.pick(["mixed", "mixed", "alternative", "related", "digest", "report"])
        boundary = self.pick(BOUNDARIES)
        quoted = f'"{boundary}"' if " " in boundary or self.chance(0.5) else boundary
        head = [self.header("Content-Type", f"multipart/{subtype}; boundary={quoted}")]
        if self.broken(0.05):
            head.append(self.header("Content-Transfer-Encoding", self.pick(["base64", "7bit", "quoted-printable"])))
        body = b"preamble\r\n" if self.chance(0.3) else b""
        delimiter = b"--" + boundary.encode()
        for _ in range(self.rnd.randrange(0 if self.chance(0.05) else 1, 4)):
            tail = self.pick([b" ", b"\t", b"x"]) if self.broken(0.1) else b""
            body += delimiter + tail + b"\r\n" + self.part(depth + 1) + b"\r\n"
        if not self.broken(0.1):
            body += delimiter + b"--" + (self.pick([b" ", b"junk"]) if self.broken(0.2) else b"") + b"\r\n"
        if self.chance(0.2):
            body += b"epilogue\r\n" + (delimiter + b"\r\n" if self.broken(0.3) else b"")
        return b"".join(head) + b"\r\n" + body

    def forwarded(self, depth: int) -> bytes:
        encoding = self.pick(["", "", "7bit", "base64"])
        head = self.header("Content-Type", self.pick(["message/rfc822", "message/rfc822", "message/global"]))
        if encoding:
            head += self.header("Content-Transfer-Encoding", encoding)
        inner = self.header("From", self.pick(["Buyer <buyer@example.com>", "=?utf-8?q?K=C3=A4ufer?= <k@example.de>",
                                               "b\u00fccher@example.de", "nobody"])) + self.part(depth + 1)
        return head + b"\r\n" + self.encode(inner, encoding)

    def part(self, depth: int) -> bytes:
        if depth < 4 and self.chance(0.3):
            return self.multipart(depth)
        if depth < 4 and self.chance(0.1):
            return self.forwarded(depth)
        return self.leaf()

    def message(self) -> bytes:
        top = (self.header("From", self.pick(["Buyer <buyer@example.com>", "=?utf-8?q?M=C3=BCller?= <m@example.de>",
                                              "b\u00fcro@example.de"]))
               + self.header("To", "orders@example.com") + self.header("Subject", "PO " + str(self.rnd.randrange(999)))
               + self.header("Message-ID", f"<{self.rnd.randrange(10**9)}@example.com>") + b"MIME-Version: 1.0\r\n")
        raw = top + (self.multipart(0) if self.chance(0.8) else self.part(0))
        if self.chance(0.3):
            raw = raw.replace(b"\r\n", b"\n")
        if self.broken(0.1):
            raw = raw[: self.rnd.randrange(len(raw))]  # cut off in transit
        return raw
