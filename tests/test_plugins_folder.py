"""Airflow imports every .py file of the plugins folder as a top-level module named after the file;
the package must not be imported that way (auth/http.py would have become the standard library's http)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

PROBE = """
import sys
from airflow import plugins_manager
plugins_manager.ensure_plugins_loaded()
import http, mailbox
from http import HTTPStatus
assert http.__file__.startswith(sys.base_prefix) or "site-packages" not in http.__file__, http.__file__
assert "imap_intake" not in http.__file__ and "imap_intake" not in mailbox.__file__
print("errors", plugins_manager.get_import_errors())
print("shadowed", sorted(n for n, m in sys.modules.items() if "imap_intake" in (getattr(m, "__file__", "") or "") and not n.startswith("imap_intake")))
"""


@pytest.mark.parametrize("syntax", ["glob", "regexp"])
def test_the_package_is_not_loaded_as_loose_plugin_files(syntax: str) -> None:
    """The ignore file's one pattern means the same in both syntaxes, and neither warns: the lock keeps
    pathspec below 1.0, whose GitWildMatchPattern (what Airflow builds for glob patterns, and the Task
    SDK's plugin loader whatever the syntax) would put a DeprecationWarning at the top of every task log."""
    env = dict(os.environ, AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"), PYTHONPATH=str(ROOT),
               AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX=syntax, PYTHONWARNINGS="always::DeprecationWarning")
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "shadowed []" in done.stdout and "errors {}" in done.stdout
    assert "GitWildMatchPattern" not in done.stdout + done.stderr
