"""Access tokens for IMAP sign-in, cached per connection in the process until shortly before expiry.

Three sources, each through the provider's own maintained library:

- ``microsoft_app``: ``msal.ConfidentialClientApplication`` client credentials (secret or
  certificate) for ``https://outlook.office365.com/.default``;
- ``google_service_account``: ``google.oauth2.service_account`` with domain-wide delegation
  (subject = the mailbox), scope ``https://mail.google.com/``;
- ``oauth2_refresh_token``: the RFC 6749 refresh-token grant against any token endpoint.

Errors are translated here: ``TokenRefused`` (never retried) with what the admin does, and
``TokenEndpointUnreachable`` (retried). No message carries a secret or a token.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from imap_intake.auth import sessions
from imap_intake.auth.explain import explain_refusal
from imap_intake.exceptions import TokenEndpointUnreachable, TokenRefused
from imap_intake.imap.settings import MICROSOFT_AUTHORITY, ConnectionSettings, OAuthSettings

#: A cached token is used only while it has at least this long to live.
REFRESH_MARGIN = dt.timedelta(minutes=5)
Clock = Callable[[], dt.datetime]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class AccessToken:
    value: str = field(repr=False)
    expires_at: dt.datetime

    def fresh(self, now: dt.datetime, margin: dt.timedelta = REFRESH_MARGIN) -> bool:
        return now + margin < self.expires_at


class TokenSource:
    """Gets tokens for one connection; ``token()`` serves the cache, ``token(refresh=True)`` asks anew."""

    def __init__(self, settings: ConnectionSettings, oauth: OAuthSettings, *, clock: Clock = _utcnow) -> None:
        self.settings = settings
        self.oauth = oauth
        self.clock = clock
        self._lock = threading.Lock()
        self._cached: AccessToken | None = None
        self.issued = 0  # tokens obtained from the provider by this source (for logs and tests)

    @property
    def where(self) -> str:
        return f"connection '{self.settings.conn_id}' ({self.oauth.kind})"

    def token(self, *, refresh: bool = False) -> AccessToken:
        with self._lock:
            if refresh or self._cached is None or not self._cached.fresh(self.clock()):
                self._cached = self._fetch()
                self.issued += 1
            return self._cached

    def _fetch(self) -> AccessToken:
        raise NotImplementedError

    def _session(self) -> requests.Session:
        return sessions.session(self.settings.ca_cert)

    def _refused(self, error: str, description: str = "", codes: object = None) -> TokenRefused:
        return TokenRefused(f"{self.where}: {explain_refusal(self.oauth.kind, error, description, codes)}. Not retried")

    def _unreachable(self, url: str, exc: BaseException) -> TokenEndpointUnreachable:
        reason = type(exc).__name__
        if isinstance(exc, requests.exceptions.SSLError):
            reason = "TLS certificate not trusted (put the CA in the connection's ca_cert field)"
        return TokenEndpointUnreachable(
            f"{self.where}: the token endpoint {url} could not be reached ({reason}); check the network from the "
            "Airflow workers to it (proxy, firewall, DNS). Will retry"
        )

    def _expiry(self, expires_in: object) -> dt.datetime:
        try:
            seconds = int(expires_in)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            seconds = 3600
        return self.clock() + dt.timedelta(seconds=seconds)


class MicrosoftAppTokens(TokenSource):
    """App-only client credentials for Exchange Online (IMAP.AccessAsApp)."""

    def _fetch(self) -> AccessToken:
        import msal

        oauth = self.oauth
        authority = f"{oauth.authority_host}/{oauth.tenant_id}"
        credential: Any = oauth.secret
        if oauth.certificate_thumbprint:
            credential = {"private_key": oauth.secret, "thumbprint": oauth.certificate_thumbprint}
        try:
            app = msal.ConfidentialClientApplication(
                oauth.client_id, client_credential=credential, authority=authority, http_client=self._session(),
                # Entra's instance discovery only knows Microsoft's own hosts (sovereign clouds and tests set authority_host).
                instance_discovery=None if oauth.authority_host == MICROSOFT_AUTHORITY else False,
                token_cache=msal.TokenCache(),
            )
            result = app.acquire_token_for_client(scopes=[oauth.scope or ""])
        except requests.exceptions.RequestException as exc:
            raise self._unreachable(authority, exc) from None
        except ValueError as exc:
            # msal's tenant discovery: an unknown tenant answers 400 with an AADSTS code in the text.
            text = str(exc)
            raise self._refused("invalid_tenant", text if "AADSTS" in text else f"AADSTS90002 {text[:200]}") from None
        if "access_token" not in result:
            if str(result.get("error", "")).startswith("http_"):
                raise self._unreachable(authority, RuntimeError(str(result.get("error"))))
            raise self._refused(str(result.get("error", "")), str(result.get("error_description", "")), result.get("error_codes"))
        return AccessToken(str(result["access_token"]), self._expiry(result.get("expires_in")))


class GoogleServiceAccountTokens(TokenSource):
    """A service account with domain-wide delegation, acting as the mailbox user."""

    def _fetch(self) -> AccessToken:
        from google.auth import exceptions as google_exceptions
        from google.auth.transport.requests import Request
        from google.oauth2 import service_account

        info = json.loads(self.oauth.secret)
        if self.oauth.token_url:
            info["token_uri"] = self.oauth.token_url
        try:
            credentials = service_account.Credentials.from_service_account_info(
                info, scopes=[self.oauth.scope or ""], subject=self.settings.username,
            )
        except (ValueError, KeyError) as exc:
            raise self._refused("invalid_key", f"the JSON key cannot be used: {type(exc).__name__}") from None
        try:
            credentials.refresh(Request(session=self._session()))
        except google_exceptions.TransportError as exc:
            raise self._unreachable(str(info.get("token_uri")), exc) from None
        except google_exceptions.RefreshError as exc:
            payload = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else {}
            raise self._refused(str(payload.get("error", "")), str(payload.get("error_description") or exc.args[0])) from None
        expiry = credentials.expiry.replace(tzinfo=dt.UTC) if credentials.expiry else self._expiry(3600)
        return AccessToken(str(credentials.token), expiry)


class RefreshTokenTokens(TokenSource):
    """The refresh-token grant (RFC 6749 section 6) against any token endpoint."""

    def __init__(self, settings: ConnectionSettings, oauth: OAuthSettings, *, clock: Clock = _utcnow) -> None:
        super().__init__(settings, oauth, clock=clock)
        self._refresh_token = oauth.secret

    def _fetch(self) -> AccessToken:
        oauth = self.oauth
        form = {"grant_type": "refresh_token", "refresh_token": self._refresh_token, "client_id": oauth.client_id or ""}
        if oauth.client_secret:
            form["client_secret"] = oauth.client_secret
        if oauth.scope:
            form["scope"] = oauth.scope
        url = oauth.token_url or ""
        try:
            response = self._session().post(url, data=form, headers={"Accept": "application/json"})
        except requests.exceptions.RequestException as exc:
            raise self._unreachable(url, exc) from None
        if response.status_code >= 500:
            raise self._unreachable(url, RuntimeError(f"HTTP {response.status_code}"))
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or "access_token" not in body:
            raise self._refused(str(body.get("error", f"HTTP {response.status_code}")), str(body.get("error_description", "")), body.get("error_codes"))
        if body.get("refresh_token"):
            # Rotating providers return a new refresh token; this process keeps using it.
            self._refresh_token = str(body["refresh_token"])
        return AccessToken(str(body["access_token"]), self._expiry(body.get("expires_in")))


SOURCES: dict[str, type[TokenSource]] = {
    "microsoft_app": MicrosoftAppTokens,
    "google_service_account": GoogleServiceAccountTokens,
    "oauth2_refresh_token": RefreshTokenTokens,
}
_CACHE: dict[str, TokenSource] = {}
_CACHE_LOCK = threading.Lock()


def _cache_key(settings: ConnectionSettings, oauth: OAuthSettings) -> str:
    parts = (settings.conn_id, settings.username, oauth.kind, oauth.client_id, oauth.tenant_id, oauth.token_url,
             oauth.authority_host, oauth.scope, oauth.secret, oauth.client_secret)
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


def token_source(settings: ConnectionSettings) -> TokenSource:
    """The process-wide token source of a connection (one cache per connection and credentials)."""
    if settings.oauth is None:
        raise ValueError("password connections have no token source")
    key = _cache_key(settings, settings.oauth)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = SOURCES[settings.oauth.kind](settings, settings.oauth)
        return _CACHE[key]
