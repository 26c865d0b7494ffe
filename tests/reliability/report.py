"""Figures the reliability tests record, for docs/reliability.md (written by `make reliability`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

REPORT_VARIABLE = "IMAP_INTAKE_RELIABILITY_REPORT"


def record(scenario: str, **figures: object) -> None:
    """Append one scenario's figures to the report file, when a report is being made."""
    path = os.environ.get(REPORT_VARIABLE)
    if not path:
        return
    file = Path(path)
    data = json.loads(file.read_text()) if file.exists() else {}
    data[scenario] = figures
    file.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
