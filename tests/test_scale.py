"""The smaller version of ``make scale`` that fits CI: the same scenario and the same checks, on a
CeleryExecutor cluster with Redis and two workers, with fewer workspaces and a shorter load. One
worker is SIGKILLed while it runs a task; the verdict must still be exactly-once."""

from __future__ import annotations

import pytest

from bench import scale

pytestmark = [pytest.mark.integration, pytest.mark.airflow]


@pytest.mark.timeout(900)
def test_a_celery_cluster_that_loses_a_worker_mid_task_stores_and_imports_everything_once(capsys) -> None:  # type: ignore[no-untyped-def]
    status = scale.main(["--workspaces", "4", "--mailboxes", "2", "--workers", "2", "--concurrency", "3", "--minutes", "1",
                         "--per-minute", "20", "--idle-minutes", "0.25", "--schedule", "* * * * *", "--lost-after", "30"])
    out = capsys.readouterr().out
    verdict = [line for line in out.splitlines() if line.startswith("scale: PASS") or line.startswith("scale: FAIL")]
    print(out[-6000:])
    assert verdict, out[-3000:]
    assert status == 0, verdict[-1]
    assert "worker killed and recovered" in verdict[-1]
    assert "attachments stored once 0 of 0" not in verdict[-1]
