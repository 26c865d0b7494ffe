"""The demo stack under .local/: a Postgres cluster and a Dovecot server on free loopback ports,
demo connections and keys, and an environment in which Airflow and imap-intake find them all."""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.dovecot import DovecotServer
from devstack.postgres import PostgresServer
from devstack.process import pid_alive
from devstack.tls import TlsFiles

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".local"
STATE = LOCAL / "stack.json"
DEMO_USER = "orders@example.test"


def airflow_env(*, home: Path, dsn_parts: dict[str, Any], imap: dict[str, Any], keys: str, storage: Path) -> dict[str, str]:
    """The environment Airflow and the CLI need for this stack (connections as JSON, not URIs)."""
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": "8080",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "IMAP_INTAKE_WORKSPACES_FILE": str(ROOT / "include" / "workspaces.yaml"),
        "IMAP_INTAKE_STORAGE_BASE": f"file://{storage}",
        "IMAP_INTAKE_KEYS": keys,
        "AIRFLOW_CONN_IMAP_INTAKE_DB": json.dumps({"conn_type": "postgres", **dsn_parts}),
        "AIRFLOW_CONN_IMAP_DEMO": json.dumps({"conn_type": "imap_intake", **imap}),
        "PYTHONPATH": str(ROOT),
    }


@dataclass
class Stack:
    postgres: PostgresServer
    dovecot: DovecotServer
    env: dict[str, str]
    airflow_pgid: int | None = None

    def save(self) -> None:
        LOCAL.mkdir(exist_ok=True)
        state = {
            "postgres": {"data_dir": str(self.postgres.data_dir), "port": self.postgres.port},
            "dovecot": {"root": str(self.dovecot.root), "port": self.dovecot.port, "tls_port": self.dovecot.tls_port,
                        "password": self.dovecot.password},
            "env": self.env,
            "airflow_pgid": self.airflow_pgid,
        }
        STATE.write_text(json.dumps(state, indent=2))
        STATE.chmod(0o600)
        lines = [f"export {k}='{v}'" for k, v in self.env.items()]
        (LOCAL / "env.sh").write_text("# source .local/env.sh to use the demo stack from a shell\n" + "\n".join(lines) + "\n")

    @classmethod
    def load(cls) -> Stack | None:
        if not STATE.exists():
            return None
        state = json.loads(STATE.read_text())
        dovecot_state = state["dovecot"]
        root = Path(dovecot_state["root"])
        dovecot = DovecotServer(root=root, port=dovecot_state["port"], tls_port=dovecot_state["tls_port"],
                                password=dovecot_state.get("password") or next(iter(dovecot_state.get("users", {}).values()), ""),
                                tls_files=TlsFiles(root / "tls" / "ca.pem", root / "tls" / "server.pem", root / "tls" / "server.key"))
        postgres = PostgresServer(data_dir=Path(state["postgres"]["data_dir"]), port=state["postgres"]["port"])
        return cls(postgres=postgres, dovecot=dovecot, env=state["env"], airflow_pgid=state.get("airflow_pgid"))

    def running(self) -> bool:
        pid = self.dovecot.pid()
        return bool(pid and pid_alive(pid)) and (self.postgres.data_dir / "postmaster.pid").exists()

    @classmethod
    def up(cls) -> Stack:
        existing = cls.load()
        if existing and existing.running():
            return existing
        if existing:
            existing.down()
        LOCAL.mkdir(exist_ok=True)
        postgres = PostgresServer.create()
        postgres.start()
        password = secrets.token_urlsafe(18)
        dovecot = DovecotServer.create(password=password)
        dovecot.start()
        assert dovecot.tls_files is not None
        from imap_intake.crypto import KeyRing, generate_key

        keys = f"demo1:{generate_key()}"
        envelope = KeyRing.from_env({"IMAP_INTAKE_KEYS": keys}).encrypt(password, conn_id="imap_demo")
        storage = LOCAL / "storage"
        storage.mkdir(exist_ok=True)
        env = airflow_env(
            home=LOCAL / "airflow",
            dsn_parts={"host": "127.0.0.1", "port": postgres.port, "login": postgres.user,
                       "password": postgres.password, "schema": postgres.database},
            imap={"host": "127.0.0.1", "port": dovecot.tls_port, "login": DEMO_USER, "password": envelope,
                  "extra": {"provider": "generic", "encryption": "tls", "ca_cert": dovecot.tls_files.ca_pem,
                            "folder": "INBOX", "address": DEMO_USER, "default_supplier": "Unassigned supplier"}},
            keys=keys, storage=storage,
        )
        stack = cls(postgres=postgres, dovecot=dovecot, env=env)
        stack.save()
        return stack

    def stop_airflow(self) -> None:
        if self.airflow_pgid:
            try:
                os.killpg(self.airflow_pgid, signal.SIGTERM)
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    os.killpg(self.airflow_pgid, 0)
                    time.sleep(0.2)
                os.killpg(self.airflow_pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.airflow_pgid = None

    def down(self) -> None:
        self.stop_airflow()
        self.dovecot.destroy()
        self.postgres.destroy()
        if STATE.exists():
            STATE.unlink()
