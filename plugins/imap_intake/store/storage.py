"""Content-addressed attachment storage through Airflow's ObjectStoragePath.

``<base>/sha256/ab/abcdef...``: the same bytes are stored once, whatever their name. A write
goes to a temporary name first and is renamed into place, so a crash never leaves a short
file under a final name. A ``file://`` base is written with plain file calls (the same layout):
ObjectStoragePath's per-call overhead cost ~5 ms a file, more than parsing the message.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from imap_intake.exceptions import StorageError


class AttachmentStore:
    def __init__(self, base: str, *, conn_id: str | None = None) -> None:
        self.base = base.rstrip("/")
        self._local: Path | None = Path(self.base.removeprefix("file://")) if self.base.startswith("file:///") else None
        self._root: Any = None
        if self._local is None:
            from airflow.sdk import ObjectStoragePath

            self._root = ObjectStoragePath(self.base, conn_id=conn_id) if conn_id else ObjectStoragePath(self.base)

    def uri_for(self, sha256: str) -> str:
        return f"{self.base}/sha256/{sha256[:2]}/{sha256}"

    def _path(self, sha256: str) -> Any:
        root = self._local if self._local is not None else self._root
        return root / "sha256" / sha256[:2] / sha256

    def put(self, data: bytes, sha256: str) -> str:
        path = self._path(sha256)
        try:
            if path.exists() and path.stat().st_size == len(data):
                return self.uri_for(sha256)
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.parent / f".{sha256}.{uuid.uuid4().hex}.tmp"
            with temporary.open("wb") as handle:
                handle.write(data)
                if self._local is not None:
                    handle.flush()
                    os.fsync(handle.fileno())
            temporary.rename(path)
        except OSError as exc:
            raise StorageError(f"cannot write attachment {sha256} under {self.base}: {exc}; check the storage base and its permissions") from exc
        return self.uri_for(sha256)

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
