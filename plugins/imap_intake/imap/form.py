"""What an ``imapintake`` connection form saves and tests. Pure: JSON values in, JSON values out.

Airflow's connection form saves every extra field, ``null`` where the user left it blank, and a
field's default whether or not it applies. Saved as it is, a Microsoft 365 connection would keep a
default ``auth: password`` that overrides the preset's app sign-in, and a Gmail connection would
carry a Microsoft authority host. ``normalise_extra`` keeps what the user chose: blanks dropped,
Sign-in set to the preset's when left blank, and no field of another sign-in kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from imap_intake.imap.presets import preset
from imap_intake.imap.settings import unprefixed

CONN_TYPES = frozenset({"imapintake", "imap_intake"})
#: The extra fields each sign-in kind reads; an OAuth2 field not listed for the chosen kind is unused.
KIND_FIELDS: dict[str, frozenset[str]] = {
    "password": frozenset(),
    "microsoft_app": frozenset({"tenant_id", "client_id", "scope", "authority_host", "certificate_thumbprint"}),
    "google_service_account": frozenset({"scope", "token_url"}),
    "oauth2_refresh_token": frozenset({"token_url", "client_id", "client_secret", "scope"}),
}
SIGN_IN_FIELDS = frozenset().union(*KIND_FIELDS.values())


def unused_fields(extra: Mapping[str, Any]) -> list[str]:
    """Sign-in fields that hold a value the chosen sign-in kind does not read."""
    fields = unprefixed(extra)
    auth = str(fields.get("auth") or preset(str(fields.get("provider") or "")).auth).lower()
    if auth not in KIND_FIELDS:
        return []
    return sorted(name for name in SIGN_IN_FIELDS - KIND_FIELDS[auth] if fields.get(name) not in (None, ""))


def normalise_extra(extra: Mapping[str, Any]) -> dict[str, Any]:
    """The extra fields as a form should save them (see the module docstring)."""
    fields = {key: value for key, value in unprefixed(extra).items() if value is not None and value != ""}
    auth = str(fields.get("auth") or preset(str(fields.get("provider") or "")).auth).lower()
    fields["auth"] = auth
    for name in unused_fields(fields):
        del fields[name]
    return fields


def normalise_request(body: Mapping[str, Any], *, testing: bool) -> dict[str, Any] | None:
    """A connection create, update or test request of ours, normalised; None when it is not ours or
    needs nothing. For a test, a port of 0 is dropped: Airflow's UI sends ``Number(null)``, 0, for a
    connection saved without a port, which Airflow 3.3's test endpoint then takes for a different
    endpoint than the stored one ("Bad Request"; fixed upstream by apache/airflow#73298)."""
    if body.get("conn_type") not in CONN_TYPES:
        return None
    request = dict(body)
    if testing and request.get("port") == 0:
        del request["port"]
    extra = request.get("extra")
    if isinstance(extra, str) and extra.strip():
        import json

        try:
            parsed = json.loads(extra)
        except ValueError:
            parsed = None  # Airflow answers with its own error about the Extra field
        if isinstance(parsed, dict):
            normal = normalise_extra(parsed)
            if normal != parsed:
                request["extra"] = json.dumps(normal)
    return request if request != body else None
