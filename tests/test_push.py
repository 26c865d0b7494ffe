"""Push through Airflow's own event-driven scheduling: a real triggerer holds IDLE for push
workspaces, an APPEND starts their DAGs within seconds, workspaces on one mailbox share one
session, and the run is the same exactly-once poll."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Iterator

import pytest

from devstack.airflow_cluster import AirflowCluster
from devstack.dovecot import flags
from devstack.samples import PO_CSV_EN, message
from tests.service.helpers import attachment_rows

pytestmark = [pytest.mark.integration, pytest.mark.airflow]
WORKSPACES = 3


@pytest.fixture(scope="module")
def cluster(postgres, dovecot, tmp_path_factory) -> Iterator[tuple[AirflowCluster, list[str], str]]:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("push")
    user = f"push{secrets.token_hex(3)}@example.test"
    dovecot.add_user(user)
    tag = secrets.token_hex(2)
    slugs = [f"push{tag}_{n}" for n in range(WORKSPACES)]
    # One catch-all mailbox; each workspace owns one recipient. Cron far away: only mail starts runs.
    (root / "workspaces.yaml").write_text("workspaces:\n" + "".join(
        f"  - {{slug: {slug}, imap_conn_id: imap_push, push: true, schedule: '0 6 1 1 *', start_date: 2026-01-01, "
        f"recipients: [{slug}@orders.example], storage_base: 'file://{root}/store', default_supplier: Someone, "
        f"pool: default_pool, import_tasks: 1}}\n" for slug in slugs))
    assert dovecot.tls_files is not None
    env = {
        "IMAP_INTAKE_WORKSPACES_FILE": str(root / "workspaces.yaml"),
        "AIRFLOW_CONN_IMAP_INTAKE_DB": json.dumps({"conn_type": "postgres", "host": "127.0.0.1", "port": postgres.port,
                                                   "login": postgres.user, "password": postgres.password, "schema": postgres.database}),
        "AIRFLOW_CONN_IMAP_PUSH": json.dumps({"conn_type": "imapintake", "host": "127.0.0.1", "port": dovecot.tls_port,
                                              "login": user, "password": dovecot.password, "extra": {"ca_cert": dovecot.tls_files.ca_pem}}),
    }
    airflow = AirflowCluster.create(root / "airflow", postgres.create_database(f"airflow_push_{tag}"), extra_env=env,
                                    components=("api-server", "scheduler", "dag-processor", "triggerer"))
    airflow.migrate()
    airflow.start()
    try:
        for slug in slugs:
            airflow.wait_for_dag(f"imap_intake__{slug}")
        yield airflow, slugs, user
    finally:
        airflow.stop()


def _idle_sessions(dovecot, user: str) -> int:  # type: ignore[no-untyped-def]
    done = subprocess.run(["doveadm", "-c", str(dovecot.config_path), "who", "-1", user], capture_output=True, text=True, timeout=30)
    return sum(1 for line in done.stdout.splitlines() if line.startswith(user))


def test_new_mail_starts_the_push_workspaces_within_seconds_over_one_shared_session(cluster, dovecot, append, db) -> None:  # type: ignore[no-untyped-def]
    airflow, slugs, user = cluster
    for slug in slugs:
        airflow.airflow("dags", "unpause", f"imap_intake__{slug}")
    log = airflow.logs["triggerer"]
    deadline = time.monotonic() + 120
    while "watching folder 'INBOX' for new mail" not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, "the triggerer never started the IDLE watch:\n" + log.read_text(errors="replace")[-3000:]
        time.sleep(1)
    time.sleep(2)
    assert log.read_text(errors="replace").count("watching folder 'INBOX' for new mail") == 1
    assert _idle_sessions(dovecot, user) == 1  # three workspaces, one IDLE session
    before = flags(dovecot, user)
    order = message(sender="buyer@acme.example", to=f"{slugs[0]}@orders.example", subject="pushed order",
                    attachments=[("pushed.csv", "text/csv", PO_CSV_EN + b"push")])
    delivered = time.monotonic()
    append(user, [(order.as_bytes(), None)])
    while not attachment_rows(db, slugs[0]):
        assert time.monotonic() - delivered < 90, f"not stored; runs: {airflow.dag_runs(f'imap_intake__{slugs[0]}')}"
        time.sleep(0.5)
    latency = time.monotonic() - delivered
    runs = airflow.dag_runs(f"imap_intake__{slugs[0]}")
    assert any(str(r.get("run_id", "")).startswith("asset_triggered__") for r in runs), runs
    print(f"delivery -> attachment stored: {latency:.1f} s")
    assert latency < 30, latency  # docs/benchmarks.md has the measured distribution
    for slug in slugs[1:]:  # the others woke up too, polled, and stored nothing that is not theirs
        deadline = time.monotonic() + 90
        while not db.execute("SELECT count(*) FROM imap_intake.message WHERE workspace=%s", (slug,)).fetchone()[0]:
            assert time.monotonic() < deadline, f"{slug} never polled"
            time.sleep(0.5)
        assert attachment_rows(db, slug) == []
    assert len(attachment_rows(db, slugs[0])) == 1
    assert flags(dovecot, user) == {**before, **{uid: f for uid, f in flags(dovecot, user).items() if uid not in before}}
    assert not any(b"\\Seen" in f for f in flags(dovecot, user).values())
