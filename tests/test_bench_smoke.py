"""The benchmark code on tiny inputs: every measurement runs and yields sane figures (no timing asserted)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_bench_smoke() -> None:
    from bench.run import SMOKE, main

    results = main(["--smoke"])
    (scale,) = results["mailbox_scale"]
    assert scale["messages"] == SMOKE.sizes[0] and scale["ours_seen_flags_changed"] == 0
    assert scale["idle_poll_imap_bytes"] > 0 and scale["ratio_to_raw"] > 0
    assert results["peak_rss"]["attachments"] == SMOKE.big_messages
    assert results["dag_parse"]["workspaces"] == SMOKE.workspaces
    assert {(r["format"], r["import_tasks"]) for r in results["import_throughput"]} == {
        (fmt, tasks) for fmt in ("csv", "ubl", "pdf", "edi") for tasks in (1, 2)}
    assert all(r["orders"] == SMOKE.import_orders for r in results["import_throughput"])
