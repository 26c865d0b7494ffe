"""A throwaway Redis on a loopback port: the Celery broker of ``make scale`` and its test."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from devstack.process import find_binary, free_port, pid_alive, wait_for_port


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
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def destroy(self) -> None:
        pid = self.pid()
        if pid and pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)
