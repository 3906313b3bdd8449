"""The secret tokens of one-time links: patient invitations, staff invitations, password
resets and reminder links. Each is made by ``secrets`` and kept only as its SHA-256, so a
copy of the database opens no link; a lookup refuses what no link could be before hashing."""
from __future__ import annotations

import hashlib
import secrets

#: The longest token a lookup considers (``new_token`` gives 43 characters).
LONGEST_TOKEN = 128


def new_token() -> str:
    """A fresh link token: 32 random bytes, URL-safe."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What is stored of ``token``."""
    return hashlib.sha256(token.encode()).hexdigest()


def could_be_token(token: str | None) -> bool:
    """Whether ``token`` is worth looking up (not empty, not absurdly long)."""
    return bool(token) and len(token) <= LONGEST_TOKEN
