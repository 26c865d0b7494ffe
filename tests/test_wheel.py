"""The built wheel, installed (not editable) into a fresh venv beside a stock Airflow, works as a
stranger would use it: provider and connection type registered, the status page's plugin loaded
from its entry point, migrations and templates inside, the command runs, and a two-line DAG file of
the user's builds the DAGs of the user's own workspaces file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT

CHECK = textwrap.dedent('''
    import importlib.metadata as md, importlib.resources as resources, os, sys
    import imap_intake
    assert imap_intake.__file__.startswith(sys.prefix), imap_intake.__file__  # the wheel's copy, not the checkout
    (entry,) = [e for e in md.entry_points(group="airflow.plugins") if e.name == "imap_intake"]
    plugin = entry.load()
    assert plugin.fastapi_apps and plugin.fastapi_apps[0]["url_prefix"] == "/imap-intake", plugin.fastapi_apps
    from airflow.providers_manager import ProvidersManager
    manager = ProvidersManager()
    assert "imap-intake" in manager.providers, sorted(manager.providers)
    assert "imapintake" in manager.hooks, "connection type not registered"  # what the connection form lists
    migrations = sorted(p.name for p in (resources.files("imap_intake.store") / "migrations").iterdir() if p.name.endswith(".sql"))
    templates = sorted(p.name for p in (resources.files("imap_intake.ui") / "templates").iterdir())
    assert migrations[0] == "001_ledger.sql" and len(migrations) >= 7 and "workspace.html" in templates, (migrations, templates)
    from airflow.dag_processing.dagbag import DagBag
    bag = DagBag(dag_folder=os.environ["USER_DAGS"])
    assert not bag.import_errors, bag.import_errors
    assert sorted(bag.dag_ids) == ["imap_intake__east", "imap_intake__west"], bag.dag_ids
    print("wheel OK:", len(migrations), "migrations,", len(templates), "templates,", len(bag.dag_ids), "DAGs")
''')


def _uv() -> str:
    found = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
    if not Path(found).exists():
        pytest.fail("uv is missing: scripts/bootstrap.sh installs it")
    return found


def test_the_wheel_installs_into_a_fresh_venv_and_works(tmp_path: Path) -> None:
    uv = _uv()
    built = subprocess.run([uv, "build", "--wheel", "-o", str(tmp_path / "dist"), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("imap_intake-*.whl")
    venv = tmp_path / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "AIRFLOW_HOME"} and not k.startswith("AIRFLOW__")}
    subprocess.run([uv, "venv", "-q", "--python", base, str(venv)], check=True, env=env, timeout=120)
    # A stock Airflow at the versions CI tested (the constraints), and the wheel: not editable, nothing of the checkout.
    installed = subprocess.run([uv, "pip", "install", "-q", str(wheel), "-c", str(ROOT / "requirements-dev.txt")],
                               env={**env, "VIRTUAL_ENV": str(venv)}, capture_output=True, text=True, timeout=900)
    assert installed.returncode == 0, installed.stderr[-3000:]
    home, dags = tmp_path / "airflow", tmp_path / "user-dags"
    dags.mkdir()
    (tmp_path / "workspaces.yaml").write_text(
        "workspaces:\n"
        f"  - {{slug: east, imap_conn_id: imap_east, start_date: 2026-01-01, storage_base: 'file://{tmp_path}/store'}}\n"
        f"  - {{slug: west, imap_conn_id: imap_west, start_date: 2026-01-01, storage_base: 'file://{tmp_path}/store'}}\n")
    (dags / "orders.py").write_text(  # the two lines a user writes (the words airflow and dag let Airflow's safe mode read it)
        "from imap_intake.workspace_dags import dags_from  # airflow dag\n"
        f"globals().update(dags_from({str(tmp_path / 'workspaces.yaml')!r}))\n")
    run_env = {**env, "AIRFLOW_HOME": str(home), "USER_DAGS": str(dags), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    checked = subprocess.run([str(venv / "bin" / "python"), "-c", CHECK], cwd=tmp_path, env=run_env, capture_output=True, text=True,
                             timeout=300)
    assert checked.returncode == 0 and "wheel OK" in checked.stdout, checked.stdout[-2000:] + checked.stderr[-4000:]
    helped = subprocess.run([str(venv / "bin" / "imap-intake"), "--help"], cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0 and "diagnose" in helped.stdout, helped.stderr[-2000:]
