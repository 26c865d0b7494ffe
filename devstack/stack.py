"""The demo stack under .local/: a Postgres cluster and a Dovecot server on free loopback ports,
demo connections and keys, and an environment in which Airflow and imap-intake find them all."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.airflow_cluster import project_airflow_settings, stop_process_groups
from devstack.dovecot import DovecotServer
from devstack.oauth_server import OAuthServer
from devstack.postgres import PostgresServer
from devstack.process import pid_alive
from devstack.tls import TlsFiles, make_tls

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".local"
STATE = LOCAL / "stack.json"
DEMO_USER = "orders@example.test"
DEMO_TENANT = "demo-tenant"
DEMO_CLIENT_ID = "00000000-demo-app0-imap-000000000001"


def airflow_env(*, home: Path, dsn_parts: dict[str, Any], metadata_url: str, imap: dict[str, Any], imap_oauth: dict[str, Any],
                keys: str, storage: Path) -> dict[str, str]:
    """The environment Airflow and the CLI need for this stack (connections as JSON, not URIs)."""
    return {
        # Airflow's own metadata in its own database of the stack's Postgres (not SQLite: a scheduler
        # and a backfill command at once lock SQLite), as production does.
        **project_airflow_settings(home, metadata_url),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": "8080",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "IMAP_INTAKE_WORKSPACES_FILE": str(ROOT / "include" / "workspaces.yaml"),
        "IMAP_INTAKE_STORAGE_BASE": f"file://{storage}",
        "IMAP_INTAKE_KEYS": keys,
        "AIRFLOW_CONN_IMAP_INTAKE_DB": json.dumps({"conn_type": "postgres", **dsn_parts}),
        # The mailbox connections live in Airflow's metadata database (Admin > Connections shows and
        # edits them; devstack.__main__ writes them there): these two name them for prepare_airflow.
        "IMAP_INTAKE_DEMO_CONNECTIONS": json.dumps({"imap_demo": {"conn_type": "imapintake", **imap},
                                                    "imap_demo_oauth": {"conn_type": "imapintake", **imap_oauth}}),
        "PYTHONPATH": str(ROOT),
    }


@dataclass
class Stack:
    postgres: PostgresServer
    dovecot: DovecotServer
    oauth: OAuthServer
    env: dict[str, str]
    airflow_pgid: int | None = None

    def save(self) -> None:
        LOCAL.mkdir(exist_ok=True)
        state = {
            "postgres": {"data_dir": str(self.postgres.data_dir), "port": self.postgres.port},
            "dovecot": {"root": str(self.dovecot.root), "port": self.dovecot.port, "tls_port": self.dovecot.tls_port,
                        "password": self.dovecot.password, "tls": str(self.dovecot.tls_files.ca_cert.parent) if self.dovecot.tls_files else None},
            "oauth": {"root": str(self.oauth.root), "port": self.oauth.port, "admin_token": self.oauth.admin_token},
            "env": self.env,
            "airflow_pgid": self.airflow_pgid,
        }
        STATE.write_text(json.dumps(state, indent=2))
        STATE.chmod(0o600)
        lines = [f"export {k}='{v}'" for k, v in self.env.items()]
        (LOCAL / "env.sh").write_text("# source .local/env.sh to use the demo stack from a shell\n" + "\n".join(lines) + "\n")
        (LOCAL / "env.sh").chmod(0o600)  # it holds the demo's keys and secrets

    @classmethod
    def load(cls) -> Stack | None:
        if not STATE.exists():
            return None
        state = json.loads(STATE.read_text())
        dovecot_state = state["dovecot"]
        root = Path(dovecot_state["root"])
        tls_dir = Path(dovecot_state.get("tls") or root / "tls")
        tls = TlsFiles(tls_dir / "ca.pem", tls_dir / "server.pem", tls_dir / "server.key")
        dovecot = DovecotServer(root=root, port=dovecot_state["port"], tls_port=dovecot_state["tls_port"],
                                password=dovecot_state.get("password") or next(iter(dovecot_state.get("users", {}).values()), ""),
                                tls_files=tls)
        postgres = PostgresServer(data_dir=Path(state["postgres"]["data_dir"]), port=state["postgres"]["port"])
        oauth_state = state.get("oauth") or {"root": str(LOCAL / "oauth-missing"), "port": 0, "admin_token": ""}
        oauth = OAuthServer(Path(oauth_state["root"]), tls, port=oauth_state["port"], admin_token=oauth_state["admin_token"])
        return cls(postgres=postgres, dovecot=dovecot, oauth=oauth, env=state["env"], airflow_pgid=state.get("airflow_pgid"))

    def running(self) -> bool:
        pid, oauth_pid = self.dovecot.pid(), self.oauth.pid()
        return (bool(pid and pid_alive(pid)) and bool(oauth_pid and pid_alive(oauth_pid))
                and (self.postgres.data_dir / "postmaster.pid").exists())

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
        tls_dir = LOCAL / "tls"
        tls = make_tls(tls_dir)
        for path in (LOCAL, tls_dir):
            path.chmod(0o755)  # Dovecot's auth process reads the CA to verify the token server
        # An Entra-style token server and an app whose service principal may read the demo mailbox.
        client_secret = secrets.token_urlsafe(24)
        oauth = OAuthServer(LOCAL / "oauth", tls)
        oauth.start(apps=[{"tenant": DEMO_TENANT, "client_id": DEMO_CLIENT_ID, "secret": client_secret, "mailbox": DEMO_USER}])
        dovecot = DovecotServer.create(password=password, tls_files=tls, oauth_introspection_url=oauth.introspection_url)
        dovecot.start()
        assert dovecot.tls_files is not None
        from imap_intake.crypto import KeyRing, generate_key

        keys = f"demo1:{generate_key()}"
        ring = KeyRing.from_env({"IMAP_INTAKE_KEYS": keys})
        envelope = ring.encrypt(password, mailbox=f"{DEMO_USER}@127.0.0.1")
        storage = LOCAL / "storage"
        storage.mkdir(exist_ok=True)
        env = airflow_env(
            home=LOCAL / "airflow",
            dsn_parts={"host": "127.0.0.1", "port": postgres.port, "login": postgres.user,
                       "password": postgres.password, "schema": postgres.database},
            metadata_url=postgres.create_database("airflow"),
            imap={"host": "127.0.0.1", "port": dovecot.tls_port, "login": DEMO_USER, "password": envelope,
                  "extra": {"provider": "generic", "ca_cert": dovecot.tls_files.ca_pem,
                            "folder": "INBOX", "address": DEMO_USER, "default_supplier": "Unassigned supplier"}},
            imap_oauth={"host": "127.0.0.1", "port": dovecot.tls_port, "login": DEMO_USER,
                        "password": ring.encrypt(client_secret, mailbox=f"{DEMO_USER}@127.0.0.1"),
                        "extra": {"provider": "office365", "auth": "microsoft_app", "tenant_id": DEMO_TENANT,
                                  "client_id": DEMO_CLIENT_ID, "authority_host": oauth.base_url,
                                  "ca_cert": dovecot.tls_files.ca_pem, "folder": "INBOX", "address": DEMO_USER}},
            keys=keys, storage=storage,
        )
        stack = cls(postgres=postgres, dovecot=dovecot, oauth=oauth, env=env)
        stack.save()
        return stack

    def stop_airflow(self) -> None:
        if self.airflow_pgid:
            stop_process_groups([self.airflow_pgid])
            self.airflow_pgid = None

    def down(self) -> None:
        self.stop_airflow()
        self.dovecot.destroy()
        self.oauth.stop()
        self.postgres.destroy()
        if STATE.exists():
            STATE.unlink()
