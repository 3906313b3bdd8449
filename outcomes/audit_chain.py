"""The audit trail's hash chain: each row stores a keyed hash (HMAC-SHA256) of its own
content and of the row before it, so editing, deleting, inserting or reordering any row
breaks the chain from there on, and nobody without the key can write a row that fits.

Checkpoints of the chain's head, signed with the same key and kept outside the database,
let the verifier notice rows removed from the end (see docs/audit.md).

Pure functions, shared by the app, the verifier and the migrations. Changing them changes
the format of every stored hash.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

GENESIS = "0" * 64

#: The key id of rows hashed with plain SHA-256, before the chain was keyed (migration 0003).
UNKEYED = "sha256"
#: The key id of the key derived from SECRET_KEY outside production.
DEVELOPMENT_KEY_ID = "development"
#: The chain every row belongs to today. A checkpoint names its chain, so chains of their
#: own (one per clinic, say) can be checkpointed side by side in one file.
MAIN_CHAIN = "audit_event"

#: The columns an unkeyed row's hash covers, in a fixed order (the id and the previous hash
#: included).
HASHED_COLUMNS = (
    "id", "occurred_at", "actor_id", "actor_role", "clinic_id", "patient_id", "action",
    "object_type", "object_id", "object_version", "old_values", "new_values", "reason",
    "ip_address", "request_id", "details", "prev_hash",
)
#: A keyed row's hash covers its key id too.
KEYED_COLUMNS = (*HASHED_COLUMNS, "key_id")

_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")
MIN_SECRET_LENGTH = 32


class AuditKeyError(ValueError):
    """The audit keys setting cannot be used (the message never includes a secret)."""


@dataclass(frozen=True)
class AuditKeys:
    """The keys of the chain, oldest first: the last one signs new rows and checkpoints, the
    older ones only verify what they signed."""

    secrets: tuple[tuple[str, bytes], ...]

    def __repr__(self) -> str:  # never the secrets, in a log or a traceback
        return f"AuditKeys({', '.join(key_id for key_id, _ in self.secrets)})"

    @property
    def signing_id(self) -> str:
        return self.secrets[-1][0]

    @property
    def development(self) -> bool:
        return any(key_id == DEVELOPMENT_KEY_ID for key_id, _ in self.secrets)

    def secret(self, key_id: str) -> bytes | None:
        """The secret of ``key_id``, or None when the settings do not hold it."""
        return next((secret for known, secret in self.secrets if known == key_id), None)


def keys_from_settings(config: Mapping[str, Any]) -> AuditKeys:
    """The audit keys the app's settings give: ``AUDIT_KEYS`` when set; otherwise, outside
    production, the development key. Raises ``AuditKeyError`` when there is none to use."""
    setting = (config.get("AUDIT_KEYS") or "").strip()
    if setting:
        return parse_audit_keys(setting)
    if config.get("OUTCOMES_ENV") == "production" and not config.get("TESTING"):
        raise AuditKeyError(
            "AUDIT_KEYS must be set in production: keyid:secret (see docs/audit.md); "
            "generate a secret with: python -c 'import secrets; print(secrets.token_hex(32))'")
    return development_keys(config.get("SECRET_KEY") or "")


@lru_cache(maxsize=8)
def parse_audit_keys(setting: str) -> AuditKeys:
    """Read ``AUDIT_KEYS``: ``keyid:secret`` pairs separated by commas, oldest first."""
    secrets: list[tuple[str, bytes]] = []
    for number, entry in enumerate(setting.split(","), start=1):
        key_id, colon, secret = entry.strip().partition(":")
        if not colon or not _KEY_ID.fullmatch(key_id):
            raise AuditKeyError(
                f"AUDIT_KEYS entry {number} must be keyid:secret, the key id made of 1-32 "
                "letters, digits, '.', '_' or '-'")
        if key_id in (UNKEYED, DEVELOPMENT_KEY_ID):
            raise AuditKeyError(f"AUDIT_KEYS: the key id {key_id!r} is reserved")
        if key_id in dict(secrets):
            raise AuditKeyError(f"AUDIT_KEYS names the key id {key_id!r} twice")
        if len(secret) < MIN_SECRET_LENGTH:
            raise AuditKeyError(
                f"AUDIT_KEYS: the secret of key {key_id!r} is shorter than "
                f"{MIN_SECRET_LENGTH} characters; generate one with: "
                "python -c 'import secrets; print(secrets.token_hex(32))'")
        secrets.append((key_id, secret.encode()))
    return AuditKeys(tuple(secrets))


@lru_cache(maxsize=8)
def development_keys(secret_key: str) -> AuditKeys:
    """The key used outside production when ``AUDIT_KEYS`` is not set: derived from
    SECRET_KEY and named ``development``, so rows it signed are recognisable as such."""
    secret = hmac.new(secret_key.encode(), b"outcomes audit key, development only",
                      hashlib.sha256).hexdigest().encode()
    return AuditKeys(((DEVELOPMENT_KEY_ID, secret),))


def _utc_text(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_content(values: Mapping[str, Any], columns: tuple[str, ...]) -> bytes:
    """The bytes a row's hash covers: ``columns`` of ``values`` as canonical JSON."""
    # Only a datetime needs converting; the test is inline because the verifier runs this
    # for every column of every row.
    content = [_utc_text(value) if isinstance(value, dt.datetime) else value
               for value in map(values.get, columns)]
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode()


def row_hash(values: Mapping[str, Any]) -> str:
    """The plain SHA-256 of an unkeyed row's hashed columns, as canonical JSON (the format
    of rows written before the chain was keyed)."""
    return hashlib.sha256(canonical_content(values, HASHED_COLUMNS)).hexdigest()


def keyed_row_hash(values: Mapping[str, Any], secret: bytes) -> str:
    """The HMAC-SHA256, under ``secret``, of a keyed row's columns as canonical JSON."""
    return hmac.new(secret, canonical_content(values, KEYED_COLUMNS), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Checkpoint:
    """The head of a chain at one moment: its last row, how many rows lead to it, that row's
    hash, and the last row written unkeyed (0 when none), signed with an audit key."""

    chain: str
    last_id: int
    count: int
    head: str
    legacy_until: int
    written_at: str
    key_id: str
    mac: str = ""

    def fields(self) -> dict[str, Any]:
        values = asdict(self)
        del values["mac"]
        return values


def _checkpoint_mac(fields: Mapping[str, Any], secret: bytes) -> str:
    # The prefix keeps a checkpoint's signature from ever equalling a row's.
    message = b"outcomes audit checkpoint\n" + json.dumps(
        fields, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def sign_checkpoint(checkpoint: Checkpoint, keys: AuditKeys) -> Checkpoint:
    """The checkpoint, signed with the newest key."""
    unsigned = Checkpoint(**{**checkpoint.fields(), "key_id": keys.signing_id})
    mac = _checkpoint_mac(unsigned.fields(), keys.secret(keys.signing_id))
    return Checkpoint(**{**unsigned.fields(), "mac": mac})


def checkpoint_line(checkpoint: Checkpoint) -> str:
    """One line of the checkpoint file (JSON, no newline)."""
    return json.dumps(asdict(checkpoint), sort_keys=True, separators=(",", ":"))


class CheckpointError(ValueError):
    """A checkpoint line that cannot be trusted (malformed, or its signature fails)."""


def read_checkpoint_line(line: str, keys: AuditKeys) -> Checkpoint:
    """Parse one line of the checkpoint file and check its signature."""
    try:
        values = json.loads(line)
        checkpoint = Checkpoint(**values)
        well_formed = (isinstance(checkpoint.last_id, int) and isinstance(checkpoint.count, int)
                       and isinstance(checkpoint.legacy_until, int)
                       and all(isinstance(getattr(checkpoint, name), str) for name in
                               ("chain", "head", "written_at", "key_id", "mac")))
    except (ValueError, TypeError):
        well_formed = False
    if not well_formed:
        raise CheckpointError("it is not a checkpoint (malformed)")
    secret = keys.secret(checkpoint.key_id)
    if secret is None:
        raise CheckpointError(f"it is signed with key id {checkpoint.key_id!r}, which "
                              "AUDIT_KEYS does not hold")
    if not hmac.compare_digest(checkpoint.mac, _checkpoint_mac(checkpoint.fields(), secret)):
        raise CheckpointError("its signature does not match (the line was edited or forged)")
    return checkpoint
