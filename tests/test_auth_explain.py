"""What an identity provider's refusal means, in the admin's words (pure)."""

from __future__ import annotations

import pytest

from imap_intake.auth.explain import explain_imap_rejection, explain_refusal


@pytest.mark.parametrize(("description", "expected"), [
    ("AADSTS7000215: Invalid client secret provided.", "secret's Value (not its Secret ID)"),
    ("AADSTS7000222: The provided client secret keys are expired.", "has expired: create a new one"),
    ("AADSTS700016: Application with identifier 'x' was not found in the directory 'y'.", "client_id) was not found"),
    ("AADSTS90002: Tenant 'nope' not found.", "tenant was not found"),
    ("AADSTS65001: The user or administrator has not consented to use the application.", "IMAP.AccessAsApp, then 'Grant admin consent'"),
])
def test_microsoft_codes_say_what_the_admin_does(description: str, expected: str) -> None:
    text = explain_refusal("microsoft_app", "invalid_client", description)
    assert expected in text and text.startswith("Microsoft Entra refused the token request (AADSTS")


def test_codes_from_the_error_codes_list_count_too() -> None:
    assert "AADSTS50173" in explain_refusal("oauth2_refresh_token", "invalid_grant", "revoked", [50173])


def test_google_and_generic_refusals() -> None:
    assert "Manage Domain Wide Delegation" in explain_refusal("google_service_account", "unauthorized_client", "Client is unauthorized")
    assert "revoked or has expired" in explain_refusal("oauth2_refresh_token", "invalid_grant", "Token is not active")
    assert "check client_id and client_secret" in explain_refusal("oauth2_refresh_token", "invalid_client", "bad")


def test_an_imap_rejection_for_microsoft_names_the_exchange_powershell_steps() -> None:
    text = explain_imap_rejection("microsoft_app", "orders@contoso.example", "abc-123")
    assert "New-ServicePrincipal -AppId abc-123" in text and "Add-MailboxPermission -Identity orders@contoso.example" in text
    assert "Set-CASMailbox" in text
