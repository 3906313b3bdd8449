"""Answers sent after a session ended, held for their patient until they sign in again.

Held answers are bound to the user whose session ended, live a short while
(``HELD_ANSWERS_MINUTES``), are read once, and are never a record: the patient sends the
form again to store it.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..models import HeldAnswers, User, utcnow


def hold_answers(session: Session, user: User, instrument_key: str,
                 answers: Sequence[int | None], submission_key: str,
                 lifetime: dt.timedelta) -> HeldAnswers:
    """Keep ``answers`` for ``user`` for ``lifetime``, replacing any form held before, and
    forget every held form whose time is up."""
    now = utcnow()
    held = HeldAnswers(user_id=user.id, instrument_key=instrument_key, answers=list(answers),
                       submission_key=submission_key, held_at=now, expires_at=now + lifetime)
    try:
        with session.begin_nested():
            session.execute(delete(HeldAnswers).where(
                (HeldAnswers.user_id == user.id) | (HeldAnswers.expires_at <= now)))
            session.add(held)
    except IntegrityError:
        # The same form sent twice at once (a double tap): the other request holds it.
        return session.scalars(select(HeldAnswers).where(HeldAnswers.user_id == user.id)).one()
    return held


def forget_expired_answers(session: Session) -> None:
    """Delete every held form whose time is up (run at each sign-in, so none lingers)."""
    session.execute(delete(HeldAnswers).where(HeldAnswers.expires_at <= utcnow()))


def held_instrument(session: Session, user_id: int) -> str | None:
    """The instrument of the form held for this user, while it is still held."""
    return session.scalar(select(HeldAnswers.instrument_key).where(
        HeldAnswers.user_id == user_id, HeldAnswers.expires_at > utcnow()))


def take_held_answers(session: Session, user_id: int, instrument_key: str
                      ) -> HeldAnswers | None:
    """The form held for this user and instrument, removed as it is read (once only); None
    when there is none or its time is up."""
    held = session.scalar(select(HeldAnswers).where(
        HeldAnswers.user_id == user_id, HeldAnswers.instrument_key == instrument_key))
    if held is None:
        return None
    session.delete(held)
    session.flush()
    return held if held.expires_at > utcnow() else None
