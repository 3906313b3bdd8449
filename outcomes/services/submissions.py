"""One record per staff form, however often it is sent.

Every staff form that stores a record carries a key made when the form is shown
(``forms.KeyedForm``). The service that stores the record first claims the key: it inserts a
``FormSubmission`` row in a savepoint of the request's transaction. The unique key decides
between copies of one form: a later copy, or one racing the first (on PostgreSQL its insert
waits for the first copy's transaction and fails when that commits), rolls back its savepoint
and raises ``RepeatedSubmission`` naming what the first copy stored, and the view answers as
the first copy did. When the first copy's values are refused its transaction rolls back, the
claim with it, and the key is free for the corrected form.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..models import FormSubmission
from .audit import Actor

#: What a keyed form does (mirrored in the schema).
KINDS = ("course.start", "course.update", "infusion.record", "infusion.correct",
         "patient.enrol", "plan.update")


class RepeatedSubmission(Exception):
    """The form was sent before and its record stored; this copy stored nothing."""

    def __init__(self, earlier: FormSubmission, same_values: bool) -> None:
        super().__init__(earlier.kind)
        self.kind = earlier.kind
        #: The record the first copy stored or changed.
        self.object_id = earlier.object_id
        #: False when this copy asked for other values than the first (they were not saved).
        self.same_values = same_values


@dataclass
class Claim:
    """A form's key, claimed in the current transaction (``row`` None: no form, no key)."""

    row: FormSubmission | None

    def stored(self, object_id: int) -> None:
        """Note the record the form stored, for the answers to its later copies."""
        if self.row is not None:
            self.row.object_id = object_id


def claim(session: Session, actor: Actor, kind: str, key: str | None,
          values: Sequence[object]) -> Claim:
    """Claim the form's ``key`` for this transaction, before its record is stored.

    ``values`` are what the form asks for (targets included), compared with a later copy's.
    ``key`` None means the caller is no form (the command line, the demo seeder): nothing is
    claimed. Raises RepeatedSubmission when a copy of the form was stored first."""
    if key is None:
        return Claim(None)
    if kind not in KINDS:
        raise ValueError(f"unknown kind of form {kind!r}")
    key_hash = hashlib.sha256(f"{actor.user.id}:{kind}:{key}".encode()).hexdigest()
    values_hash = hashlib.sha256(json.dumps(list(values), default=str,
                                               sort_keys=True).encode()).hexdigest()
    row = FormSubmission(key_hash=key_hash, kind=kind, values_hash=values_hash,
                         user_id=actor.user.id)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        earlier = session.scalar(select(FormSubmission)
                                 .where(FormSubmission.key_hash == key_hash))
        if earlier is None:
            raise
        raise RepeatedSubmission(earlier, earlier.values_hash == values_hash) from None
    return Claim(row)
