"""Compare the two readings of your own mail: the compiled parser's fast path and the email package.

    .venv/bin/python scripts/compare_parsers.py DIR [DIR ...]

reads every file under the directories as one raw message (an .eml export, a Maildir's cur/ and new/),
extracts it both ways, and prints how many took the fast path and every message where the two
differ (none should: please report one with the file). Also reads each message's damaged copies
(cut off, bytes scrambled, line ends changed) with --damaged. Nothing is written anywhere.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from imap_intake.mime import fast_tree
from imap_intake.mime.extract import Limits, extract

EVERYTHING = Limits(accepted=frozenset({"pdf", "csv", "xlsx", "xml", "text", "image", "unknown", "tnef"}))


def variants(raw: bytes, seed: int, damaged: bool) -> list[tuple[str, bytes]]:
    found = [("as is", raw)]
    if damaged and raw:
        rnd = random.Random(seed)
        scrambled = bytearray(raw)
        for _ in range(max(1, len(raw) // 2000)):
            scrambled[rnd.randrange(len(raw))] = rnd.randrange(256)
        found += [("cut off", raw[: len(raw) * 2 // 3]), ("scrambled", bytes(scrambled)),
                  ("LF line ends", raw.replace(b"\r\n", b"\n")), ("CRLF line ends", raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directories", nargs="+", type=Path)
    parser.add_argument("--damaged", action="store_true", help="also read damaged copies of each message")
    args = parser.parse_args(argv)
    if not fast_tree.available():
        print("fast-mail-parser is not installed: every message is read by the email package", file=sys.stderr)
        return 2
    files = sorted(p for d in args.directories for p in d.rglob("*") if p.is_file())
    read = taken = 0
    differ: list[str] = []
    for number, path in enumerate(files):
        for label, raw in variants(path.read_bytes(), number, args.damaged):
            read += 1
            if fast_tree.parse(raw) is None:
                continue
            taken += 1
            if extract(raw, EVERYTHING) != extract(raw, EVERYTHING, compiled=False):
                differ.append(f"{path} ({label})")
    print(f"compare_parsers: {len(files)} files, {read} messages read, {taken} took the fast path, {len(differ)} read differently")
    for line in differ:
        print(f"  differs: {line}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
