"""A throwaway OAuth2 authorization server on loopback, over TLS from the devstack's CA.

It answers what msal, google-auth and a refresh-token client ask, the way Microsoft Entra and
Google answer (error codes included), and it introspects tokens for Dovecot's oauth2 passdb:

- ``GET /{tenant}/v2.0/.well-known/openid-configuration``: Entra's tenant discovery (an unknown
  tenant answers 400 with AADSTS90002, as Entra does);
- ``POST /{tenant}/oauth2/v2.0/token``: client credentials (secret, or a certificate's signed
  client assertion) and the refresh-token grant, with Entra's AADSTS errors;
- ``POST /token``: the refresh-token grant and the JWT-bearer grant (RFC 7523) that Google
  service accounts use (RS256 assertion verified with the account's public key; ``sub`` is
  the mailbox under domain-wide delegation);
- ``POST /introspect``: RFC 7662 introspection for Dovecot (``active``, ``username``);
- ``/admin/*`` (bearer admin token): register apps, service accounts, refresh tokens; counts.

Run as ``python -m devstack.oauth_server CONFIG.json``; :class:`OAuthServer` starts and drives it.
Token checks use PyJWT (already in the lock through msal); the HTTP side is FastAPI and uvicorn.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import requests
from fastapi import FastAPI, Form, Header, HTTPException, Request
from fastapi.responses import JSONResponse

from devstack.process import free_port, pid_alive, read_pid, terminate, wait_for_port
from devstack.tls import TlsFiles

ROOT = Path(__file__).resolve().parent.parent


def create_app(admin_token: str, base_url: str, seed: dict[str, Any] | None = None) -> Any:
    app = FastAPI()
    state: dict[str, Any] = {"apps": {}, "service_accounts": {}, "refresh_tokens": {}, "tokens": {}, "issued": 0,
                             "introspected": 0, "lifetime": 3600}
    for body in (seed or {}).get("apps", []):  # registrations that survive a restart (the demo's app)
        state["apps"][body["client_id"]] = {"lifetime": 3600, "consented": True, **body}

    def aad_error(status: int, error: str, code: int, text: str) -> JSONResponse:
        return JSONResponse({"error": error, "error_description": f"AADSTS{code}: {text}", "error_codes": [code]}, status_code=status)

    def issue(username: str, lifetime: int) -> dict[str, Any]:
        token = secrets.token_urlsafe(32)
        state["tokens"][token] = {"username": username, "expires": time.time() + lifetime}
        state["issued"] += 1
        return {"access_token": token, "token_type": "Bearer", "expires_in": lifetime}

    def admin(authorization: str | None) -> None:
        if authorization != f"Bearer {admin_token}":
            raise HTTPException(status_code=403)

    @app.get("/{tenant}/v2.0/.well-known/openid-configuration")
    def discovery(tenant: str) -> Any:
        if not any(a["tenant"] == tenant for a in state["apps"].values()):
            return aad_error(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID.")
        return {"issuer": f"{base_url}/{tenant}/v2.0", "authorization_endpoint": f"{base_url}/{tenant}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base_url}/{tenant}/oauth2/v2.0/token"}

    @app.post("/{tenant}/oauth2/v2.0/token")
    async def entra_token(tenant: str, request: Request) -> Any:
        form = dict(await request.form())
        if form.get("grant_type") == "refresh_token":
            return refresh(form)
        client = state["apps"].get(form.get("client_id", ""))
        if client is None or client["tenant"] != tenant:
            return aad_error(400, "unauthorized_client", 700016,
                             f"Application with identifier '{form.get('client_id')}' was not found in the directory '{tenant}'.")
        if "client_assertion" in form:
            try:
                jwt.decode(str(form["client_assertion"]), client["public_key"], algorithms=["RS256", "PS256"],
                           audience=f"{base_url}/{tenant}/oauth2/v2.0/token")
            except (jwt.PyJWTError, TypeError, ValueError):
                return aad_error(401, "invalid_client", 700027, "Client assertion failed signature validation.")
        elif form.get("client_secret") != client.get("secret"):
            return aad_error(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.")
        if not client.get("consented", True):
            return aad_error(400, "invalid_grant", 65001, "The user or administrator has not consented to use the application.")
        return issue(client["mailbox"], client["lifetime"])

    def refresh(form: dict[str, Any]) -> Any:
        grant = state["refresh_tokens"].get(form.get("refresh_token", ""))
        if grant is None or grant["revoked"]:
            return JSONResponse({"error": "invalid_grant", "error_description": "Token is not active"}, status_code=400)
        if form.get("client_id") != grant["client_id"] or (grant.get("client_secret") and form.get("client_secret") != grant["client_secret"]):
            return JSONResponse({"error": "invalid_client", "error_description": "Invalid client or Invalid client credentials"}, status_code=401)
        return issue(grant["username"], grant["lifetime"])

    @app.post("/token")
    async def token(request: Request) -> Any:
        form = dict(await request.form())
        if form.get("grant_type") == "refresh_token":
            return refresh(form)
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        try:
            claims = jwt.decode(str(form.get("assertion", "")), options={"verify_signature": False})
            account = state["service_accounts"].get(claims.get("iss", ""))
            if account is None:
                raise jwt.InvalidTokenError("unknown issuer")
            # google-auth always names Google's own token endpoint as the audience
            jwt.decode(str(form["assertion"]), account["public_key"], algorithms=["RS256"],
                       audience=[f"{base_url}/token", "https://oauth2.googleapis.com/token"])
        except (jwt.PyJWTError, KeyError, TypeError, ValueError):
            return JSONResponse({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, status_code=400)
        subject = str(claims.get("sub") or "")
        if not account["delegated"] or "https://mail.google.com/" not in str(claims.get("scope", "")).split():
            return JSONResponse({"error": "unauthorized_client", "error_description": "Client is unauthorized to retrieve access tokens "
                                 "using this method, or client not authorized for any of the scopes requested."}, status_code=401)
        if not subject.endswith("@" + account["domain"]):
            return JSONResponse({"error": "invalid_grant", "error_description": "Invalid email or User ID"}, status_code=400)
        return issue(subject, account["lifetime"])

    @app.post("/introspect")
    def introspect(token: str = Form("")) -> Any:
        state["introspected"] += 1
        entry = state["tokens"].get(token)
        if entry is None or entry["expires"] < time.time():
            return {"active": False}
        return {"active": True, "username": entry["username"]}

    @app.post("/admin/app")
    def add_app(body: dict[str, Any], authorization: str | None = Header(None)) -> Any:
        admin(authorization)
        state["apps"][body["client_id"]] = {"lifetime": 3600, "consented": True, **body}
        return {"ok": True}

    @app.post("/admin/service_account")
    def add_service_account(body: dict[str, Any], authorization: str | None = Header(None)) -> Any:
        admin(authorization)
        state["service_accounts"][body["client_email"]] = {"lifetime": 3600, "delegated": True, **body}
        return {"ok": True}

    @app.post("/admin/refresh_token")
    def add_refresh_token(body: dict[str, Any], authorization: str | None = Header(None)) -> Any:
        admin(authorization)
        state["refresh_tokens"][body["refresh_token"]] = {"lifetime": 3600, "revoked": False, **body}
        return {"ok": True}

    @app.post("/admin/forget_tokens")
    def forget_tokens(authorization: str | None = Header(None)) -> Any:
        """As if the provider revoked every access token it issued (sessions revoked, keys rolled)."""
        admin(authorization)
        state["tokens"].clear()
        return {"ok": True}

    @app.get("/admin/tokens")
    def tokens(authorization: str | None = Header(None)) -> Any:
        admin(authorization)
        return {"tokens": list(state["tokens"])}

    @app.get("/admin/stats")
    def stats(authorization: str | None = Header(None)) -> Any:
        admin(authorization)
        return {"issued": state["issued"], "introspected": state["introspected"]}

    return app


@dataclass
class OAuthServer:
    """The token server in its own process, and the calls that set it up."""

    root: Path
    tls: TlsFiles
    port: int = 0
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def introspection_url(self) -> str:
        return f"{self.base_url}/introspect"

    @property
    def pid_path(self) -> Path:
        return self.root / "oauth-server.pid"

    def start(self, *, apps: list[dict[str, Any]] | None = None) -> None:
        """Start the server; ``apps`` (as for :meth:`add_microsoft_app`) are registered from the start."""
        self.port = self.port or free_port()
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "oauth-server.json"
        config.write_text(json.dumps({"port": self.port, "admin_token": self.admin_token, "cert": str(self.tls.server_cert),
                                      "key": str(self.tls.server_key), "seed": {"apps": apps or []}}))
        config.chmod(0o600)
        log = (self.root / "oauth-server.log").open("ab")
        self.process = subprocess.Popen([sys.executable, "-m", "devstack.oauth_server", str(config)], cwd=ROOT, stdout=log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid_path.write_text(str(self.process.pid))
        wait_for_port(self.port)

    def pid(self) -> int | None:
        return read_pid(self.pid_path)

    def stop(self) -> None:
        pid = self.pid()
        if pid is None:
            return
        if pid_alive(pid):
            terminate(pid, grace=3)  # uvicorn waits for open keep-alive connections: do not wait long
            if self.process is not None:
                self.process.wait(timeout=5)
        self.pid_path.unlink(missing_ok=True)

    def _post(self, path: str, body: dict[str, Any]) -> None:
        response = requests.post(f"{self.base_url}{path}", json=body, headers={"Authorization": f"Bearer {self.admin_token}"},
                                 verify=str(self.tls.ca_cert), timeout=10)
        response.raise_for_status()

    def add_microsoft_app(self, *, tenant: str, client_id: str, secret: str, mailbox: str, lifetime: int = 3600,
                          public_key: str | None = None, consented: bool = True) -> None:
        """An Entra app whose service principal has FullAccess on ``mailbox``."""
        self._post("/admin/app", {"tenant": tenant, "client_id": client_id, "secret": secret, "mailbox": mailbox,
                                  "lifetime": lifetime, "public_key": public_key, "consented": consented})

    def add_service_account(self, *, domain: str, lifetime: int = 3600, delegated: bool = True) -> dict[str, str]:
        """A Google service account with domain-wide delegation over ``domain``; returns its JSON key."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        email = f"intake-{secrets.token_hex(4)}@devstack-project.iam.gserviceaccount.com"
        public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        self._post("/admin/service_account", {"client_email": email, "public_key": public, "domain": domain,
                                              "lifetime": lifetime, "delegated": delegated})
        private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
        return {"type": "service_account", "project_id": "devstack-project", "private_key_id": secrets.token_hex(20),
                "private_key": private, "client_email": email, "client_id": str(secrets.randbelow(10**20)),
                "token_uri": f"{self.base_url}/token"}

    def add_refresh_token(self, *, client_id: str, client_secret: str | None, username: str, lifetime: int = 3600) -> str:
        token = secrets.token_urlsafe(32)
        self._post("/admin/refresh_token", {"refresh_token": token, "client_id": client_id, "client_secret": client_secret,
                                            "username": username, "lifetime": lifetime})
        return token

    def revoke_refresh_token(self, token: str) -> None:
        self._post("/admin/refresh_token", {"refresh_token": token, "revoked": True, "client_id": "", "username": ""})

    def forget_tokens(self) -> None:
        self._post("/admin/forget_tokens", {})

    def issued_tokens(self) -> list[str]:
        response = requests.get(f"{self.base_url}/admin/tokens", headers={"Authorization": f"Bearer {self.admin_token}"},
                                verify=str(self.tls.ca_cert), timeout=10)
        response.raise_for_status()
        return list(response.json()["tokens"])

    def stats(self) -> dict[str, int]:
        response = requests.get(f"{self.base_url}/admin/stats", headers={"Authorization": f"Bearer {self.admin_token}"},
                                verify=str(self.tls.ca_cert), timeout=10)
        response.raise_for_status()
        return dict(response.json())


def main(config_path: str) -> None:
    import uvicorn

    config = json.loads(Path(config_path).read_text())
    app = create_app(config["admin_token"], f"https://127.0.0.1:{config['port']}", config.get("seed"))
    uvicorn.run(app, host="127.0.0.1", port=config["port"], ssl_certfile=config["cert"], ssl_keyfile=config["key"],
                log_level="warning", access_log=False)


if __name__ == "__main__":
    main(sys.argv[1])
