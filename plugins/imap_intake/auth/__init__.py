"""OAuth2 access tokens for IMAP sign-in: Microsoft Entra apps, Google service accounts, refresh tokens."""
