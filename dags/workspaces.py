"""Airflow DAGs: one imap-intake DAG per workspace in include/workspaces.yaml (or $IMAP_INTAKE_WORKSPACES_FILE).

Parsing reads that one file: no network, no database. (The words "airflow" and "dag" in this
file are what Airflow's safe-mode discovery looks for.)
"""

from __future__ import annotations

from pathlib import Path

from imap_intake.workspace_dags import dags_from

globals().update(dags_from(Path(__file__).resolve().parent.parent / "include" / "workspaces.yaml"))
