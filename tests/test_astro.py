"""astro.yaml is the deployment manifest: it must agree with the Astro files and with the code."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import yaml

from imap_intake.config import load_workspaces
from imap_intake.provider import get_provider_info

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = yaml.safe_load((ROOT / "astro.yaml").read_text())


def test_runtime_image_matches_the_dockerfile() -> None:
    froms = re.findall(r"^FROM\s+(\S+)", (ROOT / "Dockerfile").read_text(), flags=re.MULTILINE)
    assert froms == [MANIFEST["runtime"]["image"]]
    tag = MANIFEST["runtime"]["image"].rsplit(":", 1)[1]
    assert tag.startswith(MANIFEST["runtime"]["airflow_version"] + "-")


def _pins(name: str) -> dict[str, str]:
    return dict(re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)$", (ROOT / name).read_text(), flags=re.MULTILINE))


def test_airflow_version_matches_the_lock() -> None:
    pinned = _pins("requirements-dev.txt")["apache-airflow"]
    assert pinned.rsplit(".", 1)[0] == MANIFEST["runtime"]["airflow_version"]


def test_the_image_gets_runtime_packages_only_at_the_tested_versions() -> None:
    runtime, full = _pins("requirements.txt"), _pins("requirements-dev.txt")
    assert {"imapclient", "cryptography", "psycopg", "psycopg-binary", "apache-airflow-providers-postgres", "msal"} <= set(runtime)
    # No Airflow (the Runtime image brings it) and no development or test tool in the image.
    assert not set(runtime) & {"apache-airflow", "apache-airflow-core", "pytest", "pytest-timeout", "hypothesis", "ruff", "mypy",
                               "playwright", "types-pyyaml"}
    assert all(full[name] == version for name, version in runtime.items())  # what CI tested


def test_provider_identity_matches_pyproject_and_provider_info() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    info = get_provider_info()
    assert MANIFEST["provider"]["package"] == project["name"] == info["package-name"]
    assert project["entry-points"]["apache_airflow_provider"]["provider_info"] == MANIFEST["provider"]["entry_point"]
    assert [c["connection-type"] for c in info["connection-types"]] == [MANIFEST["provider"]["connection_type"], "imap_intake"]


def _workspaces():  # type: ignore[no-untyped-def]
    return load_workspaces((ROOT / "include" / "workspaces.yaml").read_text(), source="workspaces.yaml",
                           env={"IMAP_INTAKE_STORAGE_BASE": "file:///x"})


def test_connections_pools_and_dags_match_the_workspaces() -> None:
    workspaces = _workspaces()
    needed = {(w.imap_conn_id, "imapintake") for w in workspaces} | {(w.postgres_conn_id, "postgres") for w in workspaces}
    assert {(c["conn_id"], c["conn_type"]) for c in MANIFEST["connections"]} == needed
    assert {p["name"] for p in MANIFEST["pools"]} == {w.pool for w in workspaces}
    assert set(MANIFEST["dags"]) == {w.dag_id for w in workspaces}


def test_airflow_settings_declares_the_same_connections_and_pools() -> None:
    settings = yaml.safe_load((ROOT / "airflow_settings.yaml").read_text())["airflow"]
    assert {(c["conn_id"], c["conn_type"]) for c in settings["connections"]} == {(c["conn_id"], c["conn_type"]) for c in MANIFEST["connections"]}
    assert {(p["pool_name"], p["pool_slot"]) for p in settings["pools"]} == {(p["name"], p["slots"]) for p in MANIFEST["pools"]}


def test_every_environment_variable_the_code_reads_is_declared() -> None:
    declared = {e["name"] for group in MANIFEST["environment"].values() for e in group}
    source = "\n".join(p.read_text() for p in (ROOT / "plugins" / "imap_intake").rglob("*.py"))
    read = set(re.findall(r'"(IMAP_INTAKE_[A-Z_]+)"', source))
    assert read and read <= declared, read - declared
    dockerfile_env = dict(re.findall(r"^ENV\s+(\S+)=(\S+)", (ROOT / "Dockerfile").read_text(), flags=re.MULTILINE))
    for entry in MANIFEST["environment"]["required"]:
        if "value" in entry:
            assert dockerfile_env.get(entry["name"]) == entry["value"]
    assert os.path.exists(ROOT / "packages.txt") and os.path.exists(ROOT / "dags" / ".airflowignore")


def test_the_deployment_template_is_the_celery_deployment_make_scale_runs() -> None:
    from bench import scale

    template = yaml.safe_load((ROOT / MANIFEST["deployment"]["template"]).read_text())["deployment"]
    wanted = MANIFEST["deployment"]
    assert template["configuration"]["executor"] == wanted["executor"] == "CeleryExecutor"
    assert template["configuration"]["runtime_version"] == MANIFEST["runtime"]["image"].rsplit(":", 1)[1]
    [queue] = template["worker_queues"]
    assert queue["name"] == wanted["worker_queue"]
    assert queue["min_worker_count"] == wanted["min_workers"] >= 2  # a worker can be lost
    assert queue["worker_concurrency"] == wanted["worker_concurrency"]
    defaults = scale.arguments([])
    assert (defaults.workers, defaults.concurrency) == (wanted["min_workers"], wanted["worker_concurrency"])
