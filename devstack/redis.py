"""A throwaway Redis on a loopback port: the Celery broker of ``make scale`` and its test."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from devstack.process import find_binary, free_port, read_pid, terminate, wait_for_port


@dataclass
class RedisServer:
    root: Path
    port: int

    @classmethod
    def create(cls) -> RedisServer:
        return cls(root=Path(tempfile.mkdtemp(prefix="imap-intake-redis-")), port=free_port())

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid_file(self) -> Path:
        return self.root / "redis.pid"

    def start(self) -> None:
        # No persistence: a broker for a throwaway cluster. protected-mode stays on (loopback only).
        subprocess.run(
            [find_binary("redis-server", ["/usr/bin", "/usr/sbin"]), "--bind", "127.0.0.1", "--port", str(self.port),
             "--save", "", "--appendonly", "no", "--daemonize", "yes", "--dir", str(self.root),
             "--pidfile", str(self.pid_file), "--logfile", str(self.root / "redis.log")],
            check=True, capture_output=True, text=True,
        )
        wait_for_port(self.port, timeout=30)

    def pid(self) -> int | None:
        return read_pid(self.pid_file)

    def destroy(self) -> None:
        pid = self.pid()
        if pid:
            terminate(pid, grace=10)
        shutil.rmtree(self.root, ignore_errors=True)
