"""Reading fetched mail in a helper process, so that a large sync uses a second core.

One poll process reads the mailbox, parses every message and writes the ledger, and Python runs
one thread at a time: a first sync of thousands of messages keeps one core busy while the others
wait. For such a sync the poll starts one helper (this interpreter, running :func:`serve`):
it receives each group of fetched messages and returns their ledger records (the same
:func:`~imap_intake.service.reading.read_group`), reading group k+1 while the poll records
group k. The helper gets mail and the workspace's rules, never a credential.

The helper is an optimisation, never a dependency: groups with a message over
``HELPER_MESSAGE_BYTES`` (or over ``HELPER_GROUP_BYTES`` in all) are read in the poll's own
process (memory stays bounded by the message, not doubled), and when the helper cannot start or
fails, the poll logs why and reads the rest itself. Its log lines are replayed in the poll's log.
It is started only where the process may run on more than one CPU; ``IMAP_INTAKE_READ_HELPER=off``
turns it off.

The exchange is length-prefixed pickle frames on the helper's stdin and stdout, between two
processes of the same installation. The poll writes from a thread of its own and reads the results
in order, so a full pipe in one direction never stops the other.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable
from typing import IO, Any

from imap_intake.config import Workspace
from imap_intake.imap.mailbox import MessageMeta
from imap_intake.mime.extract import Limits
from imap_intake.service.reading import FetchedGroup, read_group
from imap_intake.store.ledger import MessageRecord

log = logging.getLogger(__name__)

#: A sync with at least this many messages to read starts a helper (its start-up, ~0.3 s, pays off).
HELPER_FROM_MESSAGES = 500
#: Groups with a larger message, or larger in all, are read in the poll's own process: the helper holds
#: a second copy of what it reads, so only small groups go there (memory stays bounded by the message).
HELPER_MESSAGE_BYTES = 512 * 1024
HELPER_GROUP_BYTES = 16 * 1024 * 1024
OFF_VARIABLE = "IMAP_INTAKE_READ_HELPER"
PIPE_BYTES = 1024 * 1024  # Linux's default ceiling for an unprivileged process (fs.pipe-max-size)
_FRAME = struct.Struct("!Q")
_STOP = object()

Read = list[tuple[MessageMeta, MessageRecord | None]]


class HelperFailed(Exception):
    pass


def _send(stream: IO[bytes], value: object) -> None:
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_FRAME.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    header = stream.read(_FRAME.size)
    if len(header) < _FRAME.size:
        raise EOFError("the helper's pipe closed")
    (size,) = _FRAME.unpack(header)
    payload = stream.read(size)
    if len(payload) < size:
        raise EOFError("the helper's pipe closed mid-frame")
    return pickle.loads(payload)  # noqa: S301 - a frame from our own helper process


class HelperProcess:
    """The helper process of one poll: ``submit`` groups (written by a thread of their own, so the
    poll goes on recording), take their ``result`` in the same order."""

    def __init__(self, workspace: Workspace, default_supplier: str | None, uidvalidity: int, limits: Limits) -> None:
        # This interpreter, importing as this process does (installed package or plugins folder): the
        # poll's import paths are appended to the helper's, so none of them shadows the standard library.
        bootstrap = f"import sys; sys.path += [p for p in {sys.path!r} if p not in sys.path]; " \
                    "from imap_intake.service.extractor import serve; serve()"
        self._process = subprocess.Popen([sys.executable, "-c", bootstrap], stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # noqa: S603
        assert self._process.stdin is not None and self._process.stdout is not None
        self._stdin: IO[bytes] = self._process.stdin
        self._stdout: IO[bytes] = self._process.stdout
        self._unanswered = 0  # groups submitted whose result was not taken
        for pipe in (self._stdin, self._stdout):  # a group is megabytes: fewer, larger pipe transfers
            with contextlib.suppress(OSError, AttributeError):
                fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        # The writer thread: a full pipe blocks it, never the poll (which reads the results meanwhile).
        self._outbox: queue.Queue[object] = queue.Queue()
        self._writer = threading.Thread(target=self._write, name="imap-intake-helper-writer", daemon=True)
        self._outbox.put((workspace, default_supplier, uidvalidity, limits))
        self._writer.start()

    def _write(self) -> None:
        while (item := self._outbox.get()) is not _STOP:
            try:
                _send(self._stdin, item)
            except Exception:  # noqa: BLE001 - a pipe that broke or a frame that cannot be written: the helper
                self._process.kill()  # must not wait for it; the poll's next result() meets the end and says why
                return
        with contextlib.suppress(OSError, ValueError):
            self._stdin.close()  # the helper ends at the end of its input

    def submit(self, group: FetchedGroup) -> None:
        self._unanswered += 1
        self._outbox.put(group)

    def result(self) -> Read:
        """The next submitted group's records; ``HelperFailed`` when the helper cannot give them."""
        try:
            kind, value, lines = _receive(self._stdout)
        except (OSError, EOFError, pickle.PickleError, AttributeError, TypeError) as exc:
            code = self._process.poll()
            raise HelperFailed(f"{type(exc).__name__}: {exc}" + (f" (helper exited with {code})" if code is not None else "")) from exc
        self._unanswered -= 1
        for level, name, text in lines:  # the helper's log lines, in the poll's log
            logging.getLogger(name).log(level, "%s", text)
        if kind != "ok":
            raise HelperFailed(str(value))
        return value  # type: ignore[no-any-return]

    def close(self) -> None:
        """End the helper: at once when results are still unread (the poll stopped early or the
        helper failed), else once it has read the end of its input."""
        if self._unanswered:
            self._process.kill()
        self._outbox.put(_STOP)
        self._writer.join(timeout=10)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        finally:
            self._stdout.close()


def _cpus() -> int:
    """The CPUs this process may run on (its affinity, where the system tells), not the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def wanted(messages: int) -> bool:
    """Whether a poll with ``messages`` to read starts a helper."""
    off = os.environ.get(OFF_VARIABLE, "").strip().lower() in {"off", "0", "false", "no"}
    return not off and messages >= HELPER_FROM_MESSAGES and _cpus() > 1


def _small(group: FetchedGroup) -> bool:
    return group.weight <= HELPER_GROUP_BYTES and all(m.size <= HELPER_MESSAGE_BYTES for m in group.metas)


def read_groups(groups: Iterable[FetchedGroup], read: Callable[[FetchedGroup], Read], *,
                start: Callable[[], HelperProcess] | None) -> Generator[tuple[FetchedGroup, Read], None, None]:
    """Each group with its records, in order. With ``start``, small groups are read by a helper
    process: while the caller records one group, the helper reads the next (and the one after that
    waits in its pipe); ``read`` reads a group here (large groups, and every group once the helper
    is gone). The helper is closed when this ends."""
    helper: HelperProcess | None = None
    if start is not None:
        try:
            helper = start()
        except OSError as exc:
            log.warning("could not start the helper process that reads mail beside the poll (%s); reading here", exc)
    in_flight: deque[FetchedGroup] = deque()  # submitted to the helper, oldest first

    def oldest() -> tuple[FetchedGroup, Read]:
        nonlocal helper
        group = in_flight.popleft()
        if helper is not None:
            try:
                return group, helper.result()
            except HelperFailed as exc:
                log.warning("the helper process reading mail failed (%s); reading the rest of the poll here", exc)
                helper.close()
                helper = None
        return group, read(group)  # the groups it did not answer are read here, in order

    try:
        for group in groups:
            if helper is not None and _small(group):
                helper.submit(group)
                in_flight.append(group)
                if len(in_flight) > 1:
                    yield oldest()
                continue
            while in_flight:
                yield oldest()
            yield group, read(group)
        while in_flight:
            yield oldest()
    finally:
        if helper is not None:
            helper.close()


def serve() -> None:
    """The helper's side: read the setup frame, then answer each group frame until stdin closes."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write into the frame stream
    lines: list[tuple[int, str, str]] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append((record.levelno, record.name, record.getMessage()))

    logger = logging.getLogger("imap_intake")
    logger.addHandler(Keep(logging.INFO))
    logger.setLevel(logging.INFO)
    logger.propagate = False
    workspace, default_supplier, uidvalidity, limits = _receive(stdin)
    while True:
        try:
            group = _receive(stdin)
        except EOFError:
            return
        try:
            answer: tuple[str, object, list[tuple[int, str, str]]] = ("ok", read_group(workspace, default_supplier, uidvalidity, group, limits), lines[:])
        except Exception as exc:  # noqa: BLE001 - told to the poll, which reads the group itself
            answer = ("error", f"{type(exc).__name__}: {exc}", lines[:])
        lines.clear()
        _send(stdout, answer)

