"""What the Airflow benchmarks share: throwaway Postgres and Dovecot, a scratch folder, the Airflow
cluster started on them, and the connections a workspace needs; all stopped and removed on exit."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devstack.airflow_cluster import AirflowCluster
from devstack.dovecot import DovecotServer
from devstack.postgres import PostgresServer


@dataclass
class Servers:
    root: Path
    postgres: PostgresServer
    dovecot: DovecotServer
    cluster: AirflowCluster | None = None

    def ledger_connection(self) -> str:
        """``AIRFLOW_CONN_IMAP_INTAKE_DB``: the ledger in the throwaway Postgres."""
        p = self.postgres
        return json.dumps({"conn_type": "postgres", "host": "127.0.0.1", "port": p.port, "login": p.user,
                           "password": p.password, "schema": p.database})

    def imap_connection(self, user: str) -> str:
        """An ``imapintake`` connection to ``user``'s mailbox on the throwaway Dovecot."""
        assert self.dovecot.tls_files is not None
        return json.dumps({"conn_type": "imapintake", "host": "127.0.0.1", "port": self.dovecot.tls_port, "login": user,
                           "password": self.dovecot.password, "extra": {"ca_cert": self.dovecot.tls_files.ca_pem}})


@contextmanager
def servers(prefix: str) -> Iterator[Servers]:
    found = Servers(Path(tempfile.mkdtemp(prefix=prefix)), PostgresServer.create(), DovecotServer.create())
    try:
        found.postgres.start()
        found.dovecot.start()
        yield found
    finally:
        if found.cluster is not None:
            found.cluster.stop()
        found.dovecot.destroy()
        found.postgres.destroy()
        shutil.rmtree(found.root, ignore_errors=True)
