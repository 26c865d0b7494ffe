"""Content-addressed attachment storage through Airflow's ObjectStoragePath.

``<base>/sha256/ab/abcdef...``: the same bytes are stored once, whatever their name. A ``file://``
base is written with plain file calls (the same layout): ObjectStoragePath's per-call overhead
cost ~5 ms a file, more than parsing the message.

Durability is per batch, not per file: the ledger's ``store`` callable (the store itself, ``stage``)
names each attachment (its URI is its hash), and ``settle`` (called by the ledger just before the
batch's COMMIT) writes the batch's files in parallel threads, each to a temporary name in
``<base>/.staging/`` (named after host and process), fsynced, then renamed into place, and then
fsyncs the directories that hold the names. ``put`` is stage + settle, for a single file. A final
name therefore only ever holds bytes that reached the disk, and no ledger row points at a file whose
directory entry could still be lost. A batch killed before its COMMIT leaves at most complete files
under ``sha256/`` that no row names (a later sighting of the same bytes reuses them); the next store
opened on that host removes the temporaries dead processes left. ``discard`` drops what a batch that
rolled back staged. On an object store (``s3://``, ``gs://``, ``abfs://`` and the like) ``settle`` writes
the batch's objects concurrently on the same threads, each with one PUT straight to its final key: an
object store makes an object visible whole or not at all, so there is nothing to rename (a rename there
is a copy and a delete, and a temporary left by a killed batch would stay in the bucket for good). A
batch killed before its COMMIT leaves at most complete objects that no row names, re-used by the next
sighting of the same bytes. Other fsspec filesystems (sftp and the like) get a temporary name renamed
into place, as on a disk.
"""

from __future__ import annotations

import concurrent.futures
import os
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from imap_intake.exceptions import StorageError

_SYNC_THREADS = 8
# Schemes whose writes are atomic per object and that have no directories to make.
OBJECT_STORE_SCHEMES = frozenset({"s3", "s3a", "s3n", "gs", "gcs", "abfs", "abfss", "az", "adl", "oss", "r2"})
T = TypeVar("T")


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


def _all_done(call: Callable[[T], None], items: Sequence[T]) -> None:
    """``call`` on every item, on the fsync threads when there are several (one inline). Waits for all
    of them, even after one failed, so none still works when the caller cleans up; then raises the
    first failure."""
    if len(items) == 1:
        call(items[0])
        return
    futures = [_sync_pool().submit(call, item) for item in items]
    concurrent.futures.wait(futures)
    for future in futures:
        future.result()


def _fsync(path: str | Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@dataclass(frozen=True, slots=True)
class _Staged:
    """An attachment staged for the next ``settle``: its bytes, its temporary and its final name."""

    sha256: str
    data: bytes | memoryview
    temporary: str
    final: str


class _WriteFailed(Exception):
    def __init__(self, staged: _Staged, error: OSError) -> None:
        super().__init__(str(error))
        self.staged = staged
        self.error = error


def _write_each(batch: list[_Staged]) -> None:
    """Write, fsync and rename each staged file (one fsync thread's share of a batch). A file already
    stored with the same size is left as it is (content-addressed)."""
    for staged in batch:
        try:
            try:
                if os.stat(staged.final).st_size == len(staged.data):
                    continue
            except FileNotFoundError:
                pass
            descriptor = os.open(staged.temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                view = memoryview(staged.data)
                while view:
                    view = view[os.write(descriptor, view):]
                os.fsync(descriptor)  # the bytes reach the disk before the name points at them
            finally:
                os.close(descriptor)
            os.rename(staged.temporary, staged.final)
        except OSError as exc:
            raise _WriteFailed(staged, exc) from exc


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _connection_defined(conn_id: str) -> bool:
    """Whether Airflow knows ``conn_id`` (the Amazon provider falls back to anonymous access when it does not)."""
    from imap_intake.airflow_connections import get_connection

    try:
        get_connection(conn_id)
    except Exception:  # noqa: BLE001 - Airflow's not-found type differs between contexts: either way not usable
        return False
    return True


#: The object an object store's probe writes under the base (the one key that is not an attachment).
PROBE_KEY = ".imap-intake-probe"


class AttachmentStore:
    def __init__(self, base: str, *, conn_id: str | None = None) -> None:
        self.base = base.rstrip("/")
        self._local: Path | None = Path(self.base.removeprefix("file://")) if self.base.startswith("file:///") else None
        self._root: Any = None
        self._pending: list[_Staged] = []  # staged since the last settle (a local base: written there)
        self._remote_pending: list[tuple[str, bytes | memoryview]] = []  # the same on an object store
        self._new_dirs: set[Path] = set()
        self._known_dirs: set[str] = set()  # directories of this base seen to exist (created or not)
        self._host = socket.gethostname().replace(".", "_")
        if self._local is not None:
            self._staging = f"{self._local}/.staging"
            self._sweep_staging()
        else:
            from airflow.sdk import ObjectStoragePath

            self._root = ObjectStoragePath(self.base, conn_id=conn_id) if conn_id else ObjectStoragePath(self.base)
        self._scheme, _, rest = self.base.partition("://")
        self._object_store = self._scheme in OBJECT_STORE_SCHEMES
        self._bucket = rest.partition("/")[0]
        self._conn_id = conn_id
        self._s3 = self._scheme in ("s3", "s3a", "s3n")
        self._conn_label = (f"connection '{conn_id}'" if conn_id else
                            "the default connection of its scheme" + (" (aws_default)" if self._s3 else ""))

    def _where(self) -> str:
        """The store, named for an error message: the base, and on an object store its bucket and connection."""
        if self._local is not None:
            return self.base
        return f"{self.base} (bucket '{self._bucket}', {self._conn_label})"

    def _remote_hint(self, exc: BaseException) -> str:
        """What to do about an object store's error, by its kind."""
        if isinstance(exc, ImportError):
            return (f"this Airflow has no filesystem for {self._scheme}:// storage: install "
                    + ("apache-airflow-providers-amazon[s3fs] (pip install 'imap-intake[s3]')" if self._s3 else
                       "the Airflow provider of that store")
                    + " on every worker and the triggerer")
        if self._conn_id and not _connection_defined(self._conn_id):
            return (f"connection '{self._conn_id}' (storage_conn_id) is not defined, so the store was tried without credentials: "
                    "add it (for s3://: type aws, login the access key id, password the secret; extra endpoint_url for a store "
                    "other than AWS)")
        if isinstance(exc, PermissionError):
            rights = "s3:PutObject and s3:GetObject" if self._s3 else "write and read"
            return (f"{self._conn_label} may not write to bucket '{self._bucket}': grant its credentials {rights} on the "
                    "storage base's keys, or set storage_conn_id to a connection that may")
        if isinstance(exc, FileNotFoundError):
            return f"bucket '{self._bucket}' does not exist for {self._conn_label}: create it, or correct storage_base"
        return "check the storage base, its connection (endpoint, credentials) and that the store is reachable (the poll is retried)"

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
        """Name an attachment (its URI) and keep it for ``settle``, which writes it durably."""
        if self._local is not None:
            return self._stage_local(data, sha256)
        self._remote_pending.append((sha256, data))
        return self.uri_for(sha256)

    def _put_remote(self, sha256: str, data: bytes | memoryview) -> None:
        """Write one object (one of the batch's writes, which ``settle`` runs concurrently); an object
        already stored with the same size is kept (content-addressed). On an object store, one PUT to
        the final key; elsewhere a temporary name renamed into place."""
        path = self._path(sha256)
        try:
            try:
                if path.stat().st_size == len(data):
                    return
            except (FileNotFoundError, PermissionError):
                pass  # not there, or credentials that may write but not read or list: write it
            if self._object_store:
                path.write_bytes(bytes(data))
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.parent / f".{sha256}.{uuid.uuid4().hex}.tmp"
            with temporary.open("wb") as handle:
                handle.write(data)
            temporary.rename(path)
        except Exception as exc:  # noqa: BLE001 - object stores raise their own errors: all are the store's
            raise StorageError(f"cannot write attachment {sha256} to {self._where()}: {type(exc).__name__}: {exc}; "
                               f"{self._remote_hint(exc)}") from exc

    def _settle_remote(self) -> None:
        pending, self._remote_pending = self._remote_pending, []
        _all_done(lambda item: self._put_remote(*item), pending)

    def _stage_local(self, data: bytes | memoryview, sha256: str) -> str:
        """``stage`` on a local base: only the directories are made here; the file is written, synced
        and renamed by ``settle``, in parallel with the batch's other files. The main thread makes no
        system call per attachment (each one handed the interpreter lock to the IMAP reader thread and
        waited to get it back: most of the cost of a small file), and no more bytes are held than
        the batch's records hold anyway."""
        directory = f"{self._local}/sha256/{sha256[:2]}"
        try:
            if directory not in self._known_dirs:
                self._make_dirs(Path(directory))
                self._known_dirs.add(directory)
        except OSError as exc:
            raise StorageError(f"cannot write attachment {sha256} under {self.base}: {exc}; check the storage base and its permissions") from exc
        temporary = f"{self._staging}/{self._host}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
        self._pending.append(_Staged(sha256, data, temporary, f"{directory}/{sha256}"))
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
        """Make every attachment staged since the last call durable under its final name: each file
        written and fsynced, then renamed (fsync threads, a slice of the batch each), then the
        directories that gained a name fsynced. On an object store, the batch's objects are written
        concurrently (the same threads)."""
        if self._remote_pending:
            self._settle_remote()
        if not self._pending and not self._new_dirs:
            return
        pending, new_dirs = self._pending, self._new_dirs
        self._pending, self._new_dirs = [], set()
        try:
            if pending:  # a slice per thread, not a task per file (its overhead showed)
                _all_done(_write_each, [pending[n::_SYNC_THREADS] for n in range(min(_SYNC_THREADS, len(pending)))])
            # The directories that hold the batch's names (also those found already stored: their
            # entries may come from a batch that failed before syncing them), and those created.
            directories = {os.path.dirname(s.final) for s in pending} | {str(d.parent) for d in new_dirs} | {str(d) for d in new_dirs}
            for directory in sorted(directories, key=lambda d: d.count("/"), reverse=True):
                _fsync(directory)
        except _WriteFailed as failed:
            self._remove(pending)
            raise StorageError(f"cannot make attachment {failed.staged.sha256} durable under {self.base}: {failed.error}; "
                               "check the storage base (mounted, writable, room left)") from failed.error
        except OSError as exc:
            self._remove(pending)
            raise StorageError(f"cannot make attachments durable under {self.base}: {exc}; check the storage base "
                               "(mounted, writable, room left)") from exc

    def discard(self) -> None:
        """Forget what was staged since the last settle (its batch rolled back)."""
        pending, self._pending = self._pending, []  # directories it created stay, and are synced with the next batch
        self._remote_pending = []
        self._remove(pending)

    @staticmethod
    def _remove(pending: list[_Staged]) -> None:
        for staged in pending:
            try:
                os.unlink(staged.temporary)
            except OSError:
                pass

    def probe(self) -> None:
        """Raise ``StorageError`` when the store cannot take a write now (down, full, no rights).

        Tells a store that is down (retry the batch later) from one attachment it refuses (that
        message is recorded as failed)."""
        if self._local is None:
            self._probe_remote()
            return
        path = self._local / f".probe-{uuid.uuid4().hex}"
        try:
            self._local.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as handle:
                handle.write(b"imap-intake storage probe\n")
            path.unlink()
        except OSError as exc:
            raise StorageError(f"the attachment store {self.base} cannot take a write: {exc}; check it is mounted, "
                               "writable and has room (the poll is retried)") from exc

    def _probe_remote(self) -> None:
        # On an object store one key, overwritten by every probe: a PUT is all the probe needs (no
        # s3:DeleteObject); elsewhere a file of its own, removed again.
        path = self._root / (PROBE_KEY if self._object_store else f".probe-{uuid.uuid4().hex}")
        try:
            if not self._object_store:
                self._root.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"imap-intake storage probe\n")
            if not self._object_store:
                path.unlink()
        except Exception as exc:  # noqa: BLE001 - object stores raise their own errors: all are the store's
            raise StorageError(f"the attachment store {self._where()} cannot take a write: {type(exc).__name__}: {exc}; "
                               f"{self._remote_hint(exc)}") from exc

    def get(self, sha256: str) -> bytes:
        try:
            with self._path(sha256).open("rb") as handle:
                return bytes(handle.read())
        except Exception as exc:  # noqa: BLE001 - object stores raise their own errors: all are the store's
            raise StorageError(f"cannot read attachment {sha256} from {self._where()}: {type(exc).__name__}: {exc}") from exc
