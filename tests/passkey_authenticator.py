"""A passkey authenticator in software, for tests: it makes real WebAuthn data as a platform
authenticator would (WebAuthn Level 2 §6), with an EC P-256 key from ``cryptography`` and a
"none" attestation, and answers the options the server sends as the browser would pass them
on. Each answer is the JSON that static/js/passkeys.js posts."""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from webauthn.helpers import encode_cbor

#: Authenticator data flags (§6.1): user present, user verified, attested credential data.
USER_PRESENT, USER_VERIFIED, ATTESTED = 0x01, 0x04, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SoftwareAuthenticator:
    """One authenticator holding one credential once ``create`` has made it. ``counts`` says
    whether it keeps a sign count (some platform authenticators always report zero)."""

    origin: str
    counts: bool = True
    user_verified: bool = True
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    credential_id: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    sign_count: int = 0

    @property
    def id(self) -> str:
        """The credential's id as the server stores it (base64url)."""
        return b64url(self.credential_id)

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge,
                           "origin": origin or self.origin, "crossOrigin": False}).encode()

    def _flags(self, extra: int = 0) -> int:
        return USER_PRESENT | (USER_VERIFIED if self.user_verified else 0) | extra

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return encode_cbor({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"),
                            -3: numbers.y.to_bytes(32, "big")})

    def create(self, options: dict[str, Any], *, origin: str | None = None,
               rp_id: str | None = None) -> str:
        """``navigator.credentials.create``'s answer to ``options`` (the server's JSON), as
        JSON text; ``origin`` and ``rp_id`` say where the browser claims to be, when that is
        not the server's."""
        rp_hash = hashlib.sha256((rp_id or options["rp"]["id"]).encode()).digest()
        if self.counts:
            self.sign_count += 1
        attested = (bytes(16) + len(self.credential_id).to_bytes(2, "big")
                    + self.credential_id + self._cose_key())
        auth_data = (rp_hash + bytes([self._flags(ATTESTED)])
                     + self.sign_count.to_bytes(4, "big") + attested)
        attestation = encode_cbor({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        return json.dumps({
            "id": self.id, "rawId": self.id, "type": "public-key",
            "clientExtensionResults": {}, "authenticatorAttachment": "platform",
            "response": {"clientDataJSON": b64url(client_data),
                         "attestationObject": b64url(attestation),
                         "transports": ["internal"]}})

    def get(self, options: dict[str, Any], *, origin: str | None = None) -> str:
        """``navigator.credentials.get``'s answer to ``options``, as JSON text, signed with
        this authenticator's key (whether or not the options allow its credential)."""
        rp_hash = hashlib.sha256(options["rpId"].encode()).digest()
        if self.counts:
            self.sign_count += 1
        auth_data = rp_hash + bytes([self._flags()]) + self.sign_count.to_bytes(4, "big")
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(),
                                  ec.ECDSA(hashes.SHA256()))
        return json.dumps({
            "id": self.id, "rawId": self.id, "type": "public-key",
            "clientExtensionResults": {}, "authenticatorAttachment": "platform",
            "response": {"clientDataJSON": b64url(client_data),
                         "authenticatorData": b64url(auth_data),
                         "signature": b64url(signature), "userHandle": None}})
