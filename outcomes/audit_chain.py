"""The audit trail's hash chain: each row stores a hash of its own content and of the row
before it, so editing, deleting or reordering any row breaks the chain from there on.

Pure functions, shared by the app, the verifier and the migration that chains rows written
before the chain existed. Changing them changes the format of every stored hash.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from typing import Any

GENESIS = "0" * 64

#: The columns a row's hash covers, in a fixed order (the id and the previous hash included).
HASHED_COLUMNS = (
    "id", "occurred_at", "actor_id", "actor_role", "clinic_id", "patient_id", "action",
    "object_type", "object_id", "object_version", "old_values", "new_values", "reason",
    "ip_address", "request_id", "details", "prev_hash",
)


def _canonical(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value


def row_hash(values: Mapping[str, Any]) -> str:
    """The SHA-256 of a row's hashed columns, as canonical JSON."""
    content = json.dumps([_canonical(values.get(name)) for name in HASHED_COLUMNS],
                         sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                         default=str)
    return hashlib.sha256(content.encode()).hexdigest()
