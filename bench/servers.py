"""What the Airflow benchmarks and ``make scale`` share: throwaway Postgres and Dovecot (and Redis,
an S3 server where asked), a scratch folder, the Airflow cluster started on them, and the connections a
workspace needs; all stopped and removed on exit, and recorded meanwhile for ``make down``."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devstack import leftovers
from devstack.airflow_cluster import AirflowCluster
from devstack.dovecot import DovecotServer
from devstack.postgres import PostgresServer
from devstack.redis import RedisServer
from devstack.s3 import S3Server


@dataclass
class Servers:
    root: Path
    postgres: PostgresServer
    dovecot: DovecotServer
    redis: RedisServer | None = None
    s3: S3Server | None = None
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
def servers(prefix: str, *, redis: bool = False, s3: bool = False, imap_sessions: int | None = None, pg_connections: int | None = None) -> Iterator[Servers]:
    found = Servers(Path(tempfile.mkdtemp(prefix=prefix)), PostgresServer.create(), DovecotServer.create(),
                    RedisServer.create() if redis else None, S3Server.create() if s3 else None)
    if imap_sessions:  # a large run: as many sessions as asked, and Dovecot's default keepalive interval
        found.dovecot.sessions, found.dovecot.keepalive = imap_sessions, 120
    if pg_connections:
        found.postgres.max_connections = pg_connections
    parts = {"postgres": str(found.postgres.data_dir), "dovecot": str(found.dovecot.root), "airflow": str(found.root / "airflow"),
             "scratch": str(found.root)}
    if found.redis:
        parts["redis"] = str(found.redis.root)
    if found.s3:
        parts["s3"] = str(found.s3.root)
    record = leftovers.record(found.root.name, **parts)
    try:
        found.postgres.start()
        found.dovecot.start()
        if found.redis:
            found.redis.start()
        if found.s3:
            found.s3.start()
        yield found
    finally:
        if found.cluster is not None:
            found.cluster.stop()
        if found.redis:
            found.redis.destroy()
        if found.s3:
            found.s3.destroy()
        found.dovecot.destroy()
        found.postgres.destroy()
        shutil.rmtree(found.root, ignore_errors=True)
        leftovers.forget(record)
