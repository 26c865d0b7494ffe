"""Small process helpers shared by the servers: free ports, waiting, privilege drop."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, *, host: str = "127.0.0.1", timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f}s")


def is_root() -> bool:
    return os.geteuid() == 0


def run_as_service_user(args: list[str], user: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run ``args`` as ``user`` when we are root (initdb and pg_ctl refuse root), else as ourselves."""
    if is_root():
        args = ["runuser", "-u", user, "--", *args]
    return subprocess.run(args, check=True, text=True, capture_output=True, **kwargs)  # type: ignore[call-overload]


def chown_to(path: Path, user: str) -> None:
    if is_root():
        entry = pwd.getpwnam(user)
        for p in [path, *path.rglob("*")]:
            os.chown(p, entry.pw_uid, entry.pw_gid)


def find_binary(name: str, extra_dirs: list[str]) -> str:
    for d in extra_dirs:
        candidate = Path(d) / name
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found: run 'make test' or 'bash scripts/bootstrap.sh' to install it")
    return found


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` lives. Our own exited children in it are reaped first:
    a zombie still counts as a member."""
    try:
        while os.waitpid(-pgid, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def read_pid(path: Path) -> int | None:
    """The pid a daemon wrote to ``path``, or None when there is none (yet, or any more)."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def terminate(pid: int, *, grace: float, kill: bool = True) -> None:
    """SIGTERM ``pid``, wait up to ``grace`` seconds for it to go (reaping it when it is our own child:
    a zombie still answers signals), then SIGKILL it unless ``kill`` is False."""
    if not pid_alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
        except ChildProcessError:
            pass
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    if kill and pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
