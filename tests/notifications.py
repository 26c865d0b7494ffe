"""A notifier of the test suite: records every call as one JSON line in a file, as an alerting
integration (Slack, e-mail) would send one message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from airflow.sdk import BaseNotifier


class RecordingNotifier(BaseNotifier):
    template_fields = ("text",)

    def __init__(self, *, path: str, text: str = "{{ dag.dag_id }}") -> None:
        super().__init__()
        self.path = path
        self.text = text

    def notify(self, context: Any) -> None:
        ours = context.get("imap_intake") or {}
        run = context.get("dag_run")
        line = {"event": ours.get("event", "failed"), "text": self.text, "run_id": getattr(run, "run_id", None),
                "message": ours.get("message", ""), "reason": context.get("reason")}
        with Path(self.path).open("a") as out:
            out.write(json.dumps(line, default=str) + "\n")


def calls(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
