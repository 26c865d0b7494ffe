"""Where the workspaces file is and how it is read (the only file I/O around ``config``)."""

from __future__ import annotations

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
    file = workspaces_file(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the workspaces file {file}: {exc.strerror}; set {WORKSPACES_FILE_VARIABLE} to its path"
        ) from exc
    return load_workspaces(text, source=str(file), env=os.environ)


def get_workspace(slug: str, path: str | Path | None = None) -> Workspace:
    return find_workspace(read_workspaces(path), slug, source=str(workspaces_file(path)))
