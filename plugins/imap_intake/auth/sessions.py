"""HTTP sessions for token endpoints, with the connection's own CA.

``requests`` prefers ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` from the environment over a
session's ``verify`` unless ``trust_env`` is off: a per-connection CA must win, so sessions
here never read the environment (no proxies from it either). The CA is added to the public
bundle, so an IdP behind a private CA and the public token endpoints both verify.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import certifi
import requests

TIMEOUT = 20.0
_BUNDLES: dict[str, str] = {}


def _bundle(ca_pem: str) -> str:
    digest = hashlib.sha256(ca_pem.encode()).hexdigest()[:16]
    if digest not in _BUNDLES:
        path = Path(tempfile.gettempdir()) / f"imap-intake-ca-{digest}.pem"
        if not path.exists():
            temporary = path.with_suffix(".tmp")
            temporary.write_text(Path(certifi.where()).read_text() + "\n" + ca_pem.strip() + "\n")
            temporary.replace(path)
        _BUNDLES[digest] = str(path)
    return _BUNDLES[digest]


class TimeoutSession(requests.Session):
    """A session whose requests time out (msal and google-auth pass none of their own)."""

    def request(self, method, url, **kwargs):  # type: ignore[no-untyped-def, override]
        kwargs.setdefault("timeout", TIMEOUT)
        return super().request(method, url, **kwargs)


def session(ca_pem: str | None) -> requests.Session:
    http = TimeoutSession()
    http.trust_env = False
    http.verify = _bundle(ca_pem) if ca_pem else certifi.where()
    return http
