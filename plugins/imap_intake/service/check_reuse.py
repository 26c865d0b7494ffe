"""What the idle checks of one triggerer process share: connection lookups, ledger connections, threads.

A check is short (a few reads, one STATUS) and a triggerer runs thousands of them: a month of
backfill is ~3,000 checks, a ``*/15`` instant at 1,000 workspaces is 500 at once. Opening a fresh
ledger connection per check and asking the triggerer's supervisor for the same two Airflow
connections each time made those the larger part of a check's cost (``make bench-backfill`` under
py-spy). Here they are kept between checks:

* Airflow connections (the IMAP settings, the ledger's DSN) for ``LOOKUP_SECONDS``: an edit in the
  UI reaches the checks within that time (a check on stale settings that fails only sends the poll
  to a worker, which reads the connection afresh);
* ledger connections, per DSN, up to ``MAX_IDLE`` idle ones, handed back only when idle and healthy;
  after an error they are all dropped (a restarted Postgres leaves each of them broken);
* a thread pool of ``THREADS`` for the blocking checks, apart from the triggerer's default executor.

Only the trigger uses this; the poll on a worker and the command line connect as before.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

LOOKUP_SECONDS = 30.0
MAX_IDLE = 8
THREADS = 16


class CheckReuse:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic, lookup_seconds: float = LOOKUP_SECONDS,
                 max_idle: int = MAX_IDLE) -> None:
        self._clock = clock
        self._lookup_seconds = lookup_seconds
        self._max_idle = max_idle
        self._lock = threading.Lock()
        self._lookups: dict[tuple[str, str], tuple[float, Any]] = {}
        self._idle: dict[str, list[psycopg.Connection]] = {}

    def lookup(self, kind: str, key: str, load: Callable[[], Any]) -> Any:
        """``load()``'s result for (kind, key), loaded again once ``lookup_seconds`` old."""
        now = self._clock()
        with self._lock:
            found = self._lookups.get((kind, key))
        if found is not None and now - found[0] < self._lookup_seconds:
            return found[1]
        value = load()
        with self._lock:
            self._lookups[(kind, key)] = (now, value)
        return value

    @contextmanager
    def connection(self, dsn: str, connect: Callable[[str], psycopg.Connection]) -> Iterator[psycopg.Connection]:
        """An idle connection to ``dsn`` (else ``connect(dsn)``), kept afterwards if it is still usable."""
        with self._lock:
            idle = self._idle.setdefault(dsn, [])
            connection = idle.pop() if idle else None
        if connection is None:
            connection = connect(dsn)
        try:
            yield connection
        except BaseException:
            connection.close()
            self.forget(dsn)
            raise
        if connection.closed or connection.info.transaction_status != TransactionStatus.IDLE:
            connection.close()
            return
        with self._lock:
            idle = self._idle.setdefault(dsn, [])
            if len(idle) < self._max_idle:
                idle.append(connection)
                return
        connection.close()

    def forget(self, dsn: str) -> None:
        """Close the idle connections to ``dsn`` and the lookups (after an error: start afresh)."""
        with self._lock:
            idle = self._idle.pop(dsn, [])
            self._lookups.clear()
        for connection in idle:
            connection.close()

    def kept_backends(self, dsn: str) -> list[int]:
        """The Postgres backend pids of the idle connections kept for ``dsn``."""
        with self._lock:
            return [connection.info.backend_pid for connection in self._idle.get(dsn, [])]


#: The triggerer process's: one for all the idle checks it runs.
SHARED = CheckReuse()
THREAD_POOL = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="imap-intake-idle-check")
