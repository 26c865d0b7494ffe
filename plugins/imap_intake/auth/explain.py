"""What an identity provider's refusal means and what the admin does about it. Pure.

Microsoft answers with AADSTS codes in ``error_description`` / ``error_codes``; Google and
other OAuth2 servers with RFC 6749 ``error`` values. The messages name the portal page or
command that fixes the problem; they never contain a secret or a token.
"""

from __future__ import annotations

import re

ENTRA = "Entra admin center (entra.microsoft.com) > App registrations > your app"
_AADSTS = {
    90002: "the tenant was not found: check tenant_id (the Directory (tenant) ID on the app's Overview page; a verified domain also works)",
    900023: "tenant_id is not a valid tenant id or domain: copy the Directory (tenant) ID from the app's Overview page",
    700016: f"the application (client_id) was not found in this tenant: copy the Application (client) ID from {ENTRA} > Overview, and check the app is registered in this tenant",
    7000215: f"the client secret is wrong: use the secret's Value (not its Secret ID) from {ENTRA} > Certificates & secrets, or create a new secret there",
    7000222: f"the client secret has expired: create a new one in {ENTRA} > Certificates & secrets and update the connection",
    7000112: "the application is disabled in this tenant: an admin re-enables it under Enterprise applications > your app > Properties",
    65001: f"admin consent is missing: in {ENTRA} > API permissions add Office 365 Exchange Online > Application permissions > IMAP.AccessAsApp, then 'Grant admin consent'",
    500011: "Office 365 Exchange Online is not available in this tenant (no Exchange Online licence?): check the tenant has Exchange Online",
    1002012: "the scope is invalid: for app-only access use https://outlook.office365.com/.default",
    700027: "the certificate assertion was rejected: upload the certificate's public part under Certificates & secrets and check certificate_thumbprint",
    700082: "the refresh token has expired (unused for too long): sign in again to get a new refresh token",
    50173: "the refresh token was revoked (password changed or sessions revoked): sign in again to get a new refresh token",
    70008: "the refresh token has expired or was revoked: sign in again to get a new refresh token",
    50076: "multi-factor authentication is required for this grant: get a new refresh token through an interactive sign-in",
}


def aadsts_codes(description: str, codes: object = None) -> list[int]:
    found = [int(c) for c in codes] if isinstance(codes, list) else []
    return found + [int(c) for c in re.findall(r"AADSTS(\d+)", description or "") if int(c) not in found]


def explain_refusal(kind: str, error: str, description: str = "", codes: object = None) -> str:
    """One sentence: what the provider said (its code) and what to do."""
    for code in aadsts_codes(description, codes):
        if code in _AADSTS:
            return f"Microsoft Entra refused the token request (AADSTS{code}): {_AADSTS[code]}"
    said = _first_line(description) or error or "no reason given"
    error = (error or "").lower()
    if kind == "google_service_account":
        if error == "unauthorized_client" or "unauthorized_client" in description:
            return (f"Google refused the token ({said}): domain-wide delegation is not set up for this service account: in the "
                    "Google Admin console > Security > Access and data control > API controls > Manage Domain Wide Delegation, "
                    "add the service account's client ID with the scope https://mail.google.com/")
        if "invalid email" in description.lower() or "user id" in description.lower():
            return f"Google refused the token ({said}): the mailbox (the connection's Username) is not a user of the Workspace domain"
        if "signature" in description.lower() or error == "invalid_grant":
            return (f"Google refused the token ({said}): the service account key was deleted or is not valid: create a new "
                    "JSON key (Google Cloud console > IAM > Service accounts > Keys) and paste it into the Password field")
    if error == "invalid_client":
        return f"the token endpoint rejected the client ({said}): check client_id and client_secret"
    if error == "invalid_grant":
        return f"the token endpoint rejected the refresh token ({said}): it was revoked or has expired; sign in again to get a new one"
    if error in {"invalid_scope", "unauthorized_client"}:
        return f"the token endpoint refused the request ({said}): check the scope and that the client may use this grant"
    return f"the token endpoint refused to issue a token ({said})"


def explain_imap_rejection(kind: str, username: str, client_id: str | None) -> str:
    """The token was issued but the IMAP server refused it."""
    if kind == "microsoft_app":
        return (
            f"Microsoft issued a token but the IMAP server refused it for '{username}': the app's service principal has "
            "no rights on this mailbox. In Exchange Online PowerShell (Connect-ExchangeOnline) run: "
            f"New-ServicePrincipal -AppId {client_id or '<client id>'} -ObjectId <object id of the Enterprise application>; "
            f"then Add-MailboxPermission -Identity {username} -User <that service principal's id> -AccessRights FullAccess. "
            f"If that is done, IMAP may be disabled for the mailbox: Set-CASMailbox -Identity {username} -ImapEnabled $true. "
            "Changes can take up to an hour to apply"
        )
    if kind == "google_service_account":
        return (
            f"Google issued a token but the IMAP server refused it for '{username}': check IMAP is enabled for the user "
            "(Admin console > Apps > Google Workspace > Gmail > End User Access) and the delegation scope is https://mail.google.com/"
        )
    return (
        f"a token was issued but the IMAP server refused it for '{username}': the token is for another account or lacks "
        "the IMAP scope (Gmail: https://mail.google.com/; Microsoft delegated: https://outlook.office.com/IMAP.AccessAsUser.All)"
    )


def _first_line(text: str) -> str:
    return (text or "").strip().splitlines()[0][:300] if (text or "").strip() else ""
