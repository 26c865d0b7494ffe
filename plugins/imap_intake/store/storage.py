"""Content-addressed attachment storage through Airflow's ObjectStoragePath.

``<base>/sha256/ab/abcdef...``: the same bytes are stored once, whatever their name. A ``file://``
base is written with plain file calls (the same layout): ObjectStoragePath's per-call overhead
cost ~5 ms a file, more than parsing the message.

Durability is per batch, not per file: the ledger's ``store`` callable (the store itself, ``stage``)
writes each attachment to a temporary name, and ``settle`` (called by the ledger just before the
batch's COMMIT) fsyncs those files together, in parallel, renames them into place and fsyncs the
directories that gained entries. ``put`` is stage + settle, for a single file. Staged files wait in
``<base>/.staging/`` named after host and process, so a batch killed before its COMMIT leaves nothing
under ``sha256/``, and the next store opened on that host removes what dead processes left there. A final name
therefore only ever holds bytes that reached the disk, and no ledger row points at a file whose
directory entry could still be lost. ``discard`` drops the temporary files of a batch that rolled back.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from imap_intake.exceptions import StorageError

_SYNC_THREADS = 8


_pool: tuple[int, ThreadPoolExecutor] | None = None
_pool_lock = threading.Lock()


def _sync_pool() -> ThreadPoolExecutor:
    """The fsync threads, started once per process (starting 8 threads per batch cost ~1 ms a batch).
    A forked child (task runners fork) gets a pool of its own: the parent's threads do not exist there."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), ThreadPoolExecutor(max_workers=_SYNC_THREADS, thread_name_prefix="imap-intake-fsync"))
        return _pool[1]


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_each(paths: list[Path]) -> None:
    for path in paths:
        _fsync(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class AttachmentStore:
    def __init__(self, base: str, *, conn_id: str | None = None) -> None:
        self.base = base.rstrip("/")
        self._local: Path | None = Path(self.base.removeprefix("file://")) if self.base.startswith("file:///") else None
        self._root: Any = None
        self._pending: list[tuple[Path, Path]] = []  # (temporary, final) written since the last settle
        self._new_dirs: set[Path] = set()
        self._known_dirs: set[str] = set()  # directories of this base seen to exist (created or not)
        self._host = socket.gethostname().replace(".", "_")
        if self._local is not None:
            self._staging = f"{self._local}/.staging"
            self._sweep_staging()
        else:
            from airflow.sdk import ObjectStoragePath

            self._root = ObjectStoragePath(self.base, conn_id=conn_id) if conn_id else ObjectStoragePath(self.base)

    def __call__(self, attachment: Any) -> str:
        """The ledger's ``store`` callable: stage an attachment (durable at ``settle``), return its URI."""
        return self.stage(attachment.data, attachment.sha256)

    def uri_for(self, sha256: str) -> str:
        return f"{self.base}/sha256/{sha256[:2]}/{sha256}"

    def _path(self, sha256: str) -> Any:
        root = self._local if self._local is not None else self._root
        return root / "sha256" / sha256[:2] / sha256

    def put(self, data: bytes | memoryview, sha256: str) -> str:
        """Write one attachment and make it durable now."""
        uri = self.stage(data, sha256)
        self.settle()
        return uri

    def stage(self, data: bytes | memoryview, sha256: str) -> str:
        """Write an attachment under a temporary name; ``settle`` puts it in place durably."""
        if self._local is not None:
            return self._stage_local(data, sha256)
        path = self._path(sha256)
        try:
            if path.exists() and path.stat().st_size == len(data):
                return self.uri_for(sha256)
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.parent / f".{sha256}.{uuid.uuid4().hex}.tmp"
            with temporary.open("wb") as handle:
                handle.write(data)
            temporary.rename(path)
        except OSError as exc:
            raise StorageError(f"cannot write attachment {sha256} under {self.base}: {exc}; check the storage base and its permissions") from exc
        return self.uri_for(sha256)

    def _stage_local(self, data: bytes | memoryview, sha256: str) -> str:
        """``stage`` on a local base, in plain string paths: a batch's attachments are small files written
        in a loop, where pathlib's object per join and a stat per directory level were a third of the cost."""
        directory = f"{self._local}/sha256/{sha256[:2]}"
        path = f"{directory}/{sha256}"
        try:
            try:
                if os.stat(path).st_size == len(data):
                    return self.uri_for(sha256)
            except FileNotFoundError:
                pass
            if directory not in self._known_dirs:
                self._make_dirs(Path(directory))
                self._known_dirs.add(directory)
            temporary = f"{self._staging}/{self._host}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
            with open(temporary, "wb") as handle:
                handle.write(data)
            self._pending.append((Path(temporary), Path(path)))
        except OSError as exc:
            raise StorageError(f"cannot write attachment {sha256} under {self.base}: {exc}; check the storage base and its permissions") from exc
        return self.uri_for(sha256)

    def _sweep_staging(self) -> None:
        """Remove staged files of this host's processes that no longer run (killed mid-batch)."""
        assert self._local is not None
        try:
            entries = list(os.scandir(self._local / ".staging"))
        except OSError:
            return
        for entry in entries:
            host, _, rest = entry.name.partition(".")
            pid = rest.partition(".")[0]
            if host != self._host or not pid.isdigit() or _alive(int(pid)):
                continue
            try:
                os.unlink(entry.path)
            except OSError:
                pass

    def _make_dirs(self, directory: Path) -> None:
        """``directory`` and its missing parents, then the staging directory (once): the directories
        created are synced with the next batch, so the new attachment names in them survive a crash."""
        missing = []
        while not directory.exists():
            missing.append(directory)
            directory = directory.parent
        for created in reversed(missing):
            created.mkdir(exist_ok=True)
            self._new_dirs.add(created)
        if self._staging not in self._known_dirs:
            os.makedirs(self._staging, exist_ok=True)
            self._known_dirs.add(self._staging)

    def settle(self) -> None:
        """Make every attachment written since the last call durable under its final name."""
        if not self._pending and not self._new_dirs:
            return
        pending, new_dirs = self._pending, self._new_dirs
        self._pending, self._new_dirs = [], set()
        try:
            temporaries = [temporary for temporary, _ in pending]
            if len(temporaries) > 1:  # in parallel, a slice per thread (not a task per file: its overhead showed)
                list(_sync_pool().map(_fsync_each, [temporaries[n::_SYNC_THREADS] for n in range(_SYNC_THREADS)]))
            elif temporaries:
                _fsync(temporaries[0])
            for temporary, final in pending:
                temporary.rename(final)
            # The directories that gained a name, and the parents of those that were created.
            directories = {final.parent for _, final in pending} | {d.parent for d in new_dirs} | new_dirs
            for directory in sorted(directories, key=lambda d: len(d.parts), reverse=True):
                _fsync(directory)
        except OSError as exc:
            self._remove(pending)
            raise StorageError(f"cannot make attachments durable under {self.base}: {exc}; check the storage base "
                               "(mounted, writable, room left)") from exc

    def discard(self) -> None:
        """Forget what was written since the last settle (its batch rolled back)."""
        pending, self._pending = self._pending, []  # directories it created stay, and are synced with the next batch
        self._remove(pending)

    @staticmethod
    def _remove(pending: list[tuple[Path, Path]]) -> None:
        for temporary, _ in pending:
            try:
                temporary.unlink(missing_ok=True)
            except OSError:
                pass

    def probe(self) -> None:
        """Raise ``StorageError`` when the store cannot take a write now (down, full, no rights).

        Tells a store that is down (retry the batch later) from one attachment it refuses (that
        message is recorded as failed)."""
        root = self._local if self._local is not None else self._root
        path = root / f".probe-{uuid.uuid4().hex}"
        try:
            root.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as handle:
                handle.write(b"imap-intake storage probe\n")
            path.unlink()
        except OSError as exc:
            raise StorageError(f"the attachment store {self.base} cannot take a write: {exc}; check it is mounted, "
                               "writable and has room (the poll is retried)") from exc

    def get(self, sha256: str) -> bytes:
        try:
            with self._path(sha256).open("rb") as handle:
                return bytes(handle.read())
        except OSError as exc:
            raise StorageError(f"cannot read attachment {sha256} from {self.base}: {exc}") from exc
