"""What a Postgres text column can hold: the one place every ledger string passes through.

Postgres text cannot hold NUL (``psycopg.DataError``), and UTF-8 cannot carry lone surrogates
(the email parser's escapes for undecodable bytes). Both are removed; lengths are bounded so a
hostile header cannot bloat a row. Everything else is kept as sent: a file name is data here,
``safe_filename`` decides what a stored object may be called.
"""

from __future__ import annotations

import re

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
DEFAULT_LIMIT = 2000


def storable(value: object, limit: int = DEFAULT_LIMIT) -> str:
    """``value`` as text Postgres accepts: no NUL, no lone surrogates, at most ``limit`` characters."""
    return _UNSTORABLE.sub("", str(value))[:limit]


def storable_or_none(value: object | None, limit: int = DEFAULT_LIMIT) -> str | None:
    return None if value is None else storable(value, limit)
