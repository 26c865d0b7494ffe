"""Where the workspaces file is and how it is read (the only file I/O around ``config``)."""

from __future__ import annotations

import functools
import os
from pathlib import Path

from imap_intake.config import WORKSPACES_FILE_VARIABLE, Workspace, find_workspace, load_workspaces
from imap_intake.exceptions import ConfigError


def workspaces_file(default: str | Path | None = None) -> Path:
    chosen = os.environ.get(WORKSPACES_FILE_VARIABLE) or default
    if not chosen:
        home = Path(os.environ.get("AIRFLOW_HOME", "."))
        chosen = home / "include" / "workspaces.yaml"
    return Path(chosen)


def read_workspaces(path: str | Path | None = None) -> tuple[Workspace, ...]:
    """The workspaces of the file, parsed once per version of it: a triggerer checks hundreds of
    workspaces a minute, each check asking for one, and parsing a 1,000-workspace file costs ~50 ms.
    A changed file (modification time, size) or environment is parsed again."""
    file = workspaces_file(path)
    try:
        stat = file.stat()
    except OSError as exc:
        raise _unreadable(file, exc) from exc
    return _parsed(str(file), stat.st_mtime_ns, stat.st_size, tuple(sorted(os.environ.items())))


@functools.lru_cache(maxsize=8)
def _parsed(file: str, _mtime_ns: int, _size: int, env: tuple[tuple[str, str], ...]) -> tuple[Workspace, ...]:
    try:
        text = Path(file).read_text()
    except OSError as exc:
        raise _unreadable(file, exc) from exc
    return load_workspaces(text, source=file, env=dict(env))


def get_workspace(slug: str, path: str | Path | None = None) -> Workspace:
    return find_workspace(read_workspaces(path), slug, source=str(workspaces_file(path)))


def _unreadable(file: str | Path, exc: OSError) -> ConfigError:
    return ConfigError(f"cannot read the workspaces file {file}: {exc.strerror}; set {WORKSPACES_FILE_VARIABLE} to its path")

