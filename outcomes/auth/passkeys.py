"""Passkeys (WebAuthn) as a second sign-in factor: registering one, and signing in with it (issue 12 item 2)."""
from .views import bp  # noqa: F401  (its routes join the blueprint)
