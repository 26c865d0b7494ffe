"""Extra links from the intake's tasks to the status page (imap_intake.ui) in the Airflow UI.

Airflow computes an operator link in the worker when the task finishes and stores it as XCom;
the UI shows it as a button on the task instance.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink

STATUS_PREFIX = "/imap-intake"  # where the api-server mounts imap_intake.ui.app


def status_url(workspace: str, poll_id: int | None = None) -> str:
    """The status page of a workspace (or of one poll): absolute when ``[api] base_url`` is set."""
    from airflow.sdk.configuration import conf

    base = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    path = f"{STATUS_PREFIX}/workspaces/{quote(workspace, safe='')}"
    if poll_id is not None:
        path += f"/polls/{int(poll_id)}"
    return base + path


class IntakeStatusLink(BaseOperatorLink):
    """"Mail intake" on a poll task opens what that poll recorded; on an import task, the workspace."""

    name = "Mail intake"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return status_url(str(operator.workspace), getattr(operator, "poll_id", None))
