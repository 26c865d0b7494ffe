"""A throwaway PostgreSQL cluster on a loopback port."""

from __future__ import annotations

import glob
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from devstack.process import chown_to, find_binary, free_port, is_root, run_as_service_user

PG_USER = "postgres"


def _bin(name: str) -> str:
    # Debian keeps server binaries out of PATH; the newest installed major wins.
    return find_binary(name, sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True))


@dataclass
class PostgresServer:
    """One cluster. As root the data directory lives outside the repo (postgres must reach it)."""

    data_dir: Path
    port: int
    user: str = "intake"
    password: str = "intake-dev-password"
    database: str = "imap_intake"
    #: ``max_connections`` (Postgres' default 100 when None): ``make scale-1000`` runs more clients.
    max_connections: int | None = None

    @classmethod
    def create(cls, port: int | None = None) -> PostgresServer:
        base = Path(tempfile.mkdtemp(prefix="imap-intake-pg-"))
        server = cls(data_dir=base / "data", port=port or free_port())
        server.data_dir.mkdir(mode=0o700)
        chown_to(base, PG_USER)
        (base).chmod(0o755)
        pwfile = base / "pw"
        pwfile.write_text(server.password + "\n")
        chown_to(pwfile, PG_USER)
        run_as_service_user(
            [_bin("initdb"), "-D", str(server.data_dir), "-U", server.user, "-A", "scram-sha-256",
             "--pwfile", str(pwfile), "-E", "UTF8", "--locale", "C.UTF-8"],
            PG_USER,
        )
        pwfile.unlink()
        return server

    @property
    def dsn(self) -> str:
        return (
            f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"
        )

    @property
    def service_user(self) -> str:
        return PG_USER if is_root() else ""

    def start(self) -> None:
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.data_dir} -c fsync=off"
        if self.max_connections:
            opts += f" -c max_connections={self.max_connections}"
        run_as_service_user(
            [_bin("pg_ctl"), "-D", str(self.data_dir), "-o", opts, "-l",
             str(self.data_dir / "server.log"), "-w", "-t", "60", "start"],
            PG_USER,
        )
        subprocess.run(
            [_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d", "postgres",
             "-qc", f"CREATE DATABASE {self.database}"],
            env={"PGPASSWORD": self.password, "PATH": "/usr/bin:/bin"},
            check=False, capture_output=True,
        )

    def create_database(self, name: str) -> str:
        """A database of its own beside the ledger's (Airflow's metadata); returns its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(self.dsn.rsplit("/", 1)[0] + "/postgres", autocommit=True) as connection:
            exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                connection.execute(f'CREATE DATABASE "{name}"')  # noqa: S608 - a name we chose
        return f"postgresql+psycopg2://{self.user}:{self.password}@127.0.0.1:{self.port}/{name}"

    def stop(self, *, mode: str = "fast") -> None:
        if (self.data_dir / "postmaster.pid").exists():
            run_as_service_user(
                [_bin("pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"], PG_USER
            )

    def restart(self) -> None:
        self.stop()
        self.start()

    def destroy(self) -> None:
        try:
            self.stop(mode="immediate")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)
