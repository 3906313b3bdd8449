"""A reminder's link (issue 11 item 4, docs/notifications.md): opens one questionnaire,
once, for a short while, signing its patient in for that questionnaire alone.

The link is ``<PUBLIC_BASE_URL>/r#<token>``: the token is random (``secrets``), travels only
after ``#`` (browsers never send that part, so it reaches no access log, proxy log or
Referer), and only its SHA-256 is stored. A link is issued as its message is claimed and is
valid for minutes only (``valid_for``) until the message is known to have left: then it lives
``LINK_LIFETIME`` from the sending; a send that failed withdraws it (a retry carries a new
one). Redeeming it marks it used, whatever happens next.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..models import Assessment, Patient, QuestionnaireLink, User, utcnow
from . import audit
from .audit import Actor
from .tokens import could_be_token, new_token, token_hash
from .records import offered_instruments

#: How long a sent reminder's link works. Local policy, not a standard: long enough for a
#: reminder read the next evening, short enough that an old message found on a lost phone
#: opens nothing (a reminder goes at most once a clinic day, each with a fresh link).
LINK_LIFETIME = dt.timedelta(hours=72)


@dataclass(frozen=True)
class IssuedLink:
    link_id: int
    #: The secret part of the link. Put in one message; only its hash is stored.
    token: str


@dataclass(frozen=True)
class RedeemedLink:
    """What a redeemed link opens: the patient's account, and the one questionnaire."""

    link_id: int
    user: User
    instrument_key: str


@dataclass(frozen=True)
class LinkScope:
    """What a session opened by a link may reach: its patient's one questionnaire, and the
    results of what the patient sent of it since the link was used."""

    patient_id: int
    instrument_key: str
    sent_assessment_ids: frozenset[int]


def issue_link(session: Session, *, patient_id: int, instrument_key: str,
               delivery_id: int | None, valid_for: dt.timedelta) -> IssuedLink:
    """A new link to ``instrument_key`` for the patient, carried by the message of
    ``delivery_id``, valid for ``valid_for`` until ``link_sent`` gives it its full life."""
    token = new_token()
    now = utcnow()
    link = QuestionnaireLink(token_hash=token_hash(token), patient_id=patient_id,
                             instrument_key=instrument_key, delivery_id=delivery_id,
                             created_at=now, expires_at=now + valid_for)
    session.add(link)
    session.flush()
    return IssuedLink(link.id, token)


def link_sent(session: Session, link_id: int, sent_at: dt.datetime) -> None:
    """The link's message has left: it works for ``LINK_LIFETIME`` from ``sent_at``."""
    link = session.get(QuestionnaireLink, link_id)
    if link is not None and link.used_at is None:
        link.expires_at = max(sent_at, link.created_at) + LINK_LIFETIME


def withdraw_link(session: Session, link_id: int) -> None:
    """The link's message did not leave: the link is deleted (its token reached nobody)."""
    session.execute(delete(QuestionnaireLink).where(QuestionnaireLink.id == link_id,
                                                    QuestionnaireLink.used_at.is_(None)))


def redeem_link(session: Session, actor: Actor, token: str) -> RedeemedLink | None:
    """Use the link ``token`` opens, if it is unused and unexpired, its patient's account is
    active and their plan still offers its questionnaire; None otherwise (unknown, used,
    expired: the caller says the same for each). Audited, with no health data."""
    if not could_be_token(token):
        return None
    # Locked, so that two requests sending one link at once use it once (PostgreSQL;
    # SQLite's writes are serial).
    link = session.scalar(select(QuestionnaireLink)
                          .where(QuestionnaireLink.token_hash == token_hash(token))
                          .with_for_update())
    now = utcnow()
    if link is None or link.used_at is not None or link.expires_at <= now:
        return None
    patient = session.get(Patient, link.patient_id)
    user = patient.user if patient is not None else None
    if (user is None or not user.active
            or link.instrument_key not in offered_instruments(session, link.patient_id)):
        return None
    link.used_at = now
    # The one who followed the link is its patient (the request may have no session yet).
    audit.record(session, replace(actor, user=user), "questionnaire_link.redeemed",
                 patient=patient, object_type="questionnaire_link", object_id=link.id,
                 details={"delivery_id": link.delivery_id})
    return RedeemedLink(link.id, user, link.instrument_key)


def link_scope(session: Session, link_id: int) -> LinkScope | None:
    """What the session opened by the link ``link_id`` may reach (None: nothing, the link
    was never used)."""
    link = session.get(QuestionnaireLink, link_id)
    if link is None or link.used_at is None:
        return None
    sent = session.scalars(select(Assessment.id).where(
        Assessment.patient_id == link.patient_id,
        Assessment.instrument_key == link.instrument_key, Assessment.source == "patient",
        Assessment.submitted_at >= link.used_at))
    return LinkScope(link.patient_id, link.instrument_key, frozenset(sent))
