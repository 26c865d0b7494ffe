"""A throwaway S3 server on a loopback port: moto's server mode, over HTTP, in a process of its own (what
s3fs's and Airflow's Amazon provider's own tests run against). For the S3 tests and ``make scale --storage s3``.

moto keeps its objects in memory. With ``durable=True`` it records every request it takes to a file
(its recorder), and ``restart`` after a ``kill`` replays them: the new process holds what the killed
one held, as a real S3 keeps its objects when a server dies. ``enforce_auth`` turns on moto's IAM
checks, so a user whose policy does not allow a write gets S3's AccessDenied.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from devstack.process import free_port, terminate, wait_for_port

REGION = "us-east-1"
# moto accepts any credentials until enforce_auth; these are only what the clients sign with.
ANY_KEY, ANY_SECRET = "testing", "testing"


@dataclass
class S3Server:
    root: Path
    port: int
    durable: bool = False
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @classmethod
    def create(cls, *, durable: bool = False) -> S3Server:
        return cls(root=Path(tempfile.mkdtemp(prefix="imap-intake-s3-")), port=free_port(), durable=durable)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def recording(self) -> Path:
        return self.root / "requests.jsonl"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
        if self.durable:
            env.update(MOTO_ENABLE_RECORDING="True", MOTO_RECORDER_FILEPATH=str(self.recording))
        with open(self.root / "moto.log", "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )
        (self.root / "moto.pid").write_text(str(self.process.pid))  # for make down, after an interrupted run
        try:
            wait_for_port(self.port, timeout=60)
        except TimeoutError as exc:
            raise RuntimeError(f"moto's S3 server did not start; its log: {self.root / 'moto.log'}") from exc

    def kill(self) -> None:
        """SIGKILL, as a crashed server: no clean shutdown."""
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.process = None

    def restart(self) -> None:
        """Start again on the same port and, when durable, replay what the killed server had taken (a
        request cut off mid-record by the kill is dropped: the server never answered it)."""
        self.start()
        if not self.durable or not self.recording.exists():
            return
        lines = self.recording.read_text().splitlines(keepends=True)
        self.recording.write_text("".join(line for line in lines if _complete(line)))
        self._moto_api("recorder/replay-recording")

    def enforce_auth(self) -> None:
        """From now on every request must be signed by a user this server knows and allowed by its policy."""
        self._moto_api("reset-auth", b"0")

    def _moto_api(self, path: str, body: bytes = b"") -> None:
        import urllib.request

        request = urllib.request.Request(f"{self.endpoint}/moto-api/{path}", data=body, method="POST",
                                         headers={"Content-Type": "application/octet-stream"})  # not a form: moto reads the raw body
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 - our own loopback server
            response.read()

    def client(self, service: str = "s3", key: str = ANY_KEY, secret: str = ANY_SECRET) -> Any:
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=key, aws_secret_access_key=secret)

    def make_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def user(self, name: str, actions: list[str], bucket: str) -> tuple[str, str]:
        """An IAM user allowed ``actions`` on ``bucket`` and its keys; returns its access key and secret."""
        iam = self.client("iam")
        iam.create_user(UserName=name)
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions,
                  "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]}
        iam.put_user_policy(UserName=name, PolicyName=f"{name}-s3", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    def connection_uri(self, key: str = ANY_KEY, secret: str = ANY_SECRET, **extra: Any) -> str:
        """An Airflow ``aws`` connection to this server (endpoint_url and region in its extra, with
        ``extra`` beside them), as AIRFLOW_CONN_<ID>."""
        fields = {"endpoint_url": self.endpoint, "region_name": REGION, **extra}
        return f"aws://{quote(key, safe='')}:{quote(secret, safe='')}@/?__extra__={quote(json.dumps(fields), safe='')}"

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def destroy(self) -> None:
        """Stop the server (this object's, or the one its root's pid file names: ``make down``) and
        remove its folder."""
        pid = self.process.pid if self.process is not None else _recorded_pid(self.root / "moto.pid")
        if pid is not None:
            terminate(pid, grace=5)
        self.process = None
        shutil.rmtree(self.root, ignore_errors=True)


def _recorded_pid(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def _complete(line: str) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True

