"""Attachment storage: content-addressed, durable per batch (files and directory entries fsynced
before the ledger commits), nothing under a final name that did not reach the disk."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from imap_intake.exceptions import StorageError
from imap_intake.store.storage import AttachmentStore


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _finals(root: Path) -> list[Path]:
    return sorted(p for p in (root / "sha256").rglob("*") if p.is_file())


def _temporaries(root: Path) -> list[Path]:
    return sorted(root.rglob("*.tmp"))


def test_a_batch_is_staged_then_fsynced_and_renamed_together_with_its_directories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(descriptor: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{descriptor}"))
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)
    store = AttachmentStore(f"file://{tmp_path}")
    blobs = [b"po one", b"po two", b"po three"]
    uris = [store.stage(blob, _sha(blob)) for blob in blobs]
    assert _finals(tmp_path) == [] and _temporaries(tmp_path) == []  # nothing written before settle ...
    store.settle()
    assert _temporaries(tmp_path) == []
    assert [Path(u.removeprefix("file://")).read_bytes() for u in uris] == blobs
    files = [s for s in synced if ".tmp" in s]
    directories = {s for s in synced if Path(s).is_dir()}
    assert len(files) == 3  # ... then each file's data synced under its temporary name, before its rename ...
    assert {str(Path(u.removeprefix("file://")).parent) for u in uris} <= directories  # ... then the new entries
    assert str(tmp_path / "sha256") in directories  # and the directories created for them


def test_a_rolled_back_batch_leaves_no_file_and_the_same_bytes_are_stored_once(tmp_path: Path) -> None:
    store = AttachmentStore(f"file://{tmp_path}")
    store.stage(b"rolled back", _sha(b"rolled back"))
    store.discard()
    assert _finals(tmp_path) == [] and _temporaries(tmp_path) == []
    first = store.put(b"same bytes", _sha(b"same bytes"))
    again = store.put(b"same bytes", _sha(b"same bytes"))
    assert first == again and len(_finals(tmp_path)) == 1


def test_a_store_that_cannot_settle_raises_and_keeps_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = AttachmentStore(f"file://{tmp_path}")
    store.stage(b"no room", _sha(b"no room"))

    def full(descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(StorageError, match="cannot make attachment [0-9a-f]{64} durable under file://"):
        store.settle()
    assert _finals(tmp_path) == [] and _temporaries(tmp_path) == []


def test_one_file_that_cannot_be_made_durable_fails_the_batch_and_leaves_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch's files are written by several threads: when one fails, settle waits for the others
    before it cleans up, so no thread leaves a temporary behind; what did land is complete and synced."""
    import threading

    store = AttachmentStore(f"file://{tmp_path}")
    blobs = [f"po {n}".encode() for n in range(12)]
    for blob in blobs:
        store.stage(blob, _sha(blob))
    real_fsync, lock, calls = os.fsync, threading.Lock(), [0]

    def second_fails(descriptor: int) -> None:
        with lock:
            calls[0] += 1
            failing = calls[0] == 2
        if failing:
            raise OSError(5, "Input/output error")
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", second_fails)
    with pytest.raises(StorageError, match="cannot make attachment [0-9a-f]{64} durable"):
        store.settle()
    assert _temporaries(tmp_path) == []
    assert all(path.read_bytes() in blobs and path.name == _sha(path.read_bytes()) for path in _finals(tmp_path))
    assert len(_finals(tmp_path)) < len(blobs)


def test_what_a_killed_batch_staged_is_removed_by_the_next_store_on_the_host(tmp_path: Path) -> None:
    import socket

    host = socket.gethostname().replace(".", "_")
    staging = tmp_path / ".staging"
    staging.mkdir()
    leftover = staging / f"{host}.{2**22 + 7}.abc.tmp"  # beyond Linux's pid_max: no such process
    mine = staging / f"{host}.{os.getpid()}.def.tmp"  # a live process's batch in flight
    other_host = staging / f"elsewhere.{2**22 + 7}.ghi.tmp"  # another machine's: not ours to judge
    for path in (leftover, mine, other_host):
        path.write_bytes(b"staged")
    AttachmentStore(f"file://{tmp_path}")
    assert not leftover.exists() and mine.exists() and other_host.exists()


def test_an_object_store_base_writes_a_batch_concurrently_when_it_settles() -> None:
    """An object-store base (here fsspec's in-memory store, attached as Airflow's ObjectStoragePath
    resolves it): nothing is written while a batch is staged; settle writes its objects on several
    threads at once; a rolled-back batch writes nothing; a store that refuses names the attachment."""
    import itertools
    import threading
    import uuid

    from airflow.sdk.io import attach
    from fsspec.implementations.memory import MemoryFileSystem

    memory = MemoryFileSystem()
    attach("memory", fs=memory)
    base = f"memory://bucket/intake-{uuid.uuid4().hex[:8]}"
    store = AttachmentStore(base)
    blobs = [f"po {n}".encode() * 1000 for n in range(16)]
    writers: set[str] = set()
    put = store._put_remote

    calls = itertools.count()
    meet = threading.Barrier(2, timeout=30)

    def recorded(sha256: str, data: bytes | memoryview) -> None:
        writers.add(threading.current_thread().name)
        if next(calls) < 2:
            meet.wait()  # the first two writes wait for each other: only writes on two threads at once get past
        put(sha256, data)

    store._put_remote = recorded  # type: ignore[method-assign]
    uris = [store.stage(blob, _sha(blob)) for blob in blobs]
    assert uris == [f"{base}/sha256/{_sha(b)[:2]}/{_sha(b)}" for b in blobs]
    assert not memory.exists(base.removeprefix("memory:/"))  # nothing written before settle
    store.settle()
    assert [store.get(_sha(blob)) for blob in blobs] == blobs
    assert len(writers) > 1 and all(name.startswith("imap-intake-fsync") for name in writers)
    store.stage(b"rolled back", _sha(b"rolled back"))
    store.discard()
    store.settle()
    with pytest.raises(StorageError):
        store.get(_sha(b"rolled back"))

    def refuses(*args: object, **kwargs: object) -> None:
        raise PermissionError("Access Denied")

    refused = AttachmentStore(base)
    refused.stage(b"refused", _sha(b"refused"))
    memory.open = refuses  # type: ignore[method-assign]
    try:
        with pytest.raises(StorageError, match=f"cannot write attachment {_sha(b'refused')} to {base} .*: PermissionError.*grant its credentials write and read"):
            refused.settle()
    finally:
        del memory.open
