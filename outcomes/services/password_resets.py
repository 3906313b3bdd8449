"""Password resets (issue 12, docs/accounts-and-sessions.md): a single-use, short-lived link to
choose a new password, asked for by email ("Forgot your password?") or issued by the clinic
from a patient's page.

The link is ``<PUBLIC_BASE_URL>/reset#<token>``: the token is random (``secrets``), travels
only after ``#`` (browsers never send that part, so it reaches no access log, proxy log or
Referer), and only its SHA-256 is stored. An account has at most one open reset: issuing one
revokes the earlier. An emailed link is issued as its message is claimed and works for
minutes only (``valid_for``) until the message is known to have left; a clinic-issued one is
shown on the clinician's screen at once. Redeeming one sets the new password, marks the link
used, ends every session of the account, and tells its owner by email.

A signed-in person changes their password here too (``change_password``): with their current
one, ending their other sessions, and told by the same email.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session

from ..models import Delivery, PasswordReset, Patient, User, UserSession, utcnow
from . import audit
from .account_notices import notify_account
from .accounts import hash_password, normalise_email, password_matches
from .audit import Actor
from .tokens import could_be_token, new_token, token_hash
from .user_sessions import end_sessions

#: How long an emailed link works from its sending. Local policy, not a standard: an email
#: is read within the hour by someone waiting for it, and a mailbox is a place links are
#: found later by others.
EMAILED_LIFETIME = dt.timedelta(minutes=60)
#: How long a clinic-issued link works: the patient may be handed the QR code at the clinic
#: and use it at home over the next days (as with invitations, which last 7 days).
CLINIC_ISSUED_LIFETIME = dt.timedelta(hours=72)


class ResetError(ValueError):
    """A reset that cannot be carried out, with a message for the person."""


@dataclass(frozen=True)
class IssuedReset:
    reset_id: int
    #: The secret part of the link. Put in one message or shown once; only its hash is kept.
    token: str
    expires_at: dt.datetime


def issue_reset(session: Session, user: User, *, valid_for: dt.timedelta,
                issued_by: User | None = None) -> IssuedReset:
    """A new reset link for ``user``'s account, valid for ``valid_for``; any earlier open one
    is revoked in the same transaction (one open reset per account)."""
    now = utcnow()
    # Revoked by a statement, flushed before the insert, so the one-open-reset index never
    # sees two open rows.
    session.execute(update(PasswordReset)
                    .where(PasswordReset.user_id == user.id, PasswordReset.used_at.is_(None),
                           PasswordReset.revoked_at.is_(None))
                    .values(revoked_at=now)
                    .execution_options(synchronize_session=False))
    token = new_token()
    reset = PasswordReset(user_id=user.id, token_hash=token_hash(token),
                          issued_by_id=issued_by.id if issued_by is not None else None,
                          created_at=now, expires_at=now + valid_for)
    session.add(reset)
    session.flush()
    return IssuedReset(reset.id, token, reset.expires_at)


def issue_clinic_reset(session: Session, actor: Actor, patient: Patient) -> IssuedReset:
    """A reset link for ``patient``'s account, issued by a clinician (``actor``) to show as a
    link and QR code; it revokes any earlier one. Audited."""
    user = patient.user
    if user is None:
        raise ResetError("This patient has no account yet: issue an invitation instead.")
    if not user.active:
        raise ResetError("This patient's account is closed.")
    issued = issue_reset(session, user, valid_for=CLINIC_ISSUED_LIFETIME, issued_by=actor.user)
    audit.record(session, actor, "account.password_reset_issued", patient=patient,
                 object_type="password_reset", object_id=issued.reset_id)
    return issued


def request_reset(session: Session, actor: Actor, email: str) -> None:
    """Someone asked for a reset link by email: for an active account with that address, an
    account delivery (``password_reset``) the worker sends, issuing the link as it claims it;
    for any other address, nothing. The caller answers the same either way."""
    user = session.scalar(select(User).where(User.email == normalise_email(email)))
    if user is None or not user.active:
        return
    pending = session.scalar(select(exists().where(
        Delivery.user_id == user.id, Delivery.account_notice == "password_reset",
        Delivery.status == "pending")))
    if pending:  # the message on its way will carry a fresh link
        return
    notify_account(session, user, "password_reset")
    audit.record(session, actor, "account.password_reset_requested",
                 clinic_id=user.clinic_id, object_type="user", object_id=user.id)


def reset_sent(session: Session, reset_id: int, sent_at: dt.datetime) -> None:
    """The emailed link has left: it works for ``EMAILED_LIFETIME`` from ``sent_at``."""
    reset = session.get(PasswordReset, reset_id)
    if reset is not None and reset.used_at is None and reset.revoked_at is None:
        reset.expires_at = max(sent_at, reset.created_at) + EMAILED_LIFETIME


def withdraw_reset(session: Session, reset_id: int) -> None:
    """The link's message did not leave: it is deleted (its token reached nobody)."""
    session.execute(delete(PasswordReset).where(PasswordReset.id == reset_id,
                                                PasswordReset.used_at.is_(None)))


def usable_reset(session: Session, token: str, *, lock: bool = False) -> PasswordReset | None:
    """The open, unexpired reset ``token`` names, of an active account; None otherwise
    (unknown, used, revoked, expired: the caller says the same for each)."""
    if not could_be_token(token):
        return None
    statement = select(PasswordReset).where(PasswordReset.token_hash == token_hash(token))
    reset = session.scalar(statement.with_for_update() if lock else statement)
    if (reset is None or reset.used_at is not None or reset.revoked_at is not None
            or reset.expires_at <= utcnow()):
        return None
    user = session.get(User, reset.user_id)
    return reset if user is not None and user.active else None


def redeem_reset(session: Session, actor: Actor, token: str, new_password: str) -> User | None:
    """Set ``new_password`` on the account the reset ``token`` opens, if it is usable (None if
    not): the link is used, every session of the account ends, the change is audited (no
    health data) and the owner is told by email. Raises ``ResetError`` (nothing changed) for a
    password the rules refuse."""
    # Locked, so that two requests sending one link at once use it once (PostgreSQL;
    # SQLite's writes are serial).
    reset = usable_reset(session, token, lock=True)
    if reset is None:
        return None
    try:
        password_hash = hash_password(new_password)
    except ValueError as error:
        raise ResetError(str(error)) from None
    user = session.get(User, reset.user_id)
    assert user is not None  # usable_reset found it
    user.password_hash = password_hash
    reset.used_at = utcnow()
    end_sessions(session, user, "password_reset")
    notify_account(session, user, "password_changed")
    # The one who followed the link is the account's owner (the request has no session).
    audit.record(session, replace(actor, user=user), "account.password_reset",
                 clinic_id=user.clinic_id, object_type="user", object_id=user.id,
                 details={"password_reset_id": reset.id,
                          "issued_by_clinic": reset.issued_by_id is not None})
    return user


def change_password(session: Session, actor: Actor, current_password: str, new_password: str,
                    *, keep: UserSession) -> bool:
    """The signed-in owner (``actor``) replaces their password, giving their current one: every
    other session of the account ends (``keep``: the one they are in), the change is audited
    and the owner is told by email. False (a failed attempt, audited) when ``current_password``
    is not theirs; raises ``ResetError`` (nothing changed) for a password the rules refuse."""
    user = actor.user
    assert user is not None and keep.user_id == user.id
    if not password_matches(user, current_password):
        audit.record(session, actor, "account.password_change_failed", object_type="user",
                     object_id=user.id)
        return False
    try:
        user.password_hash = hash_password(new_password)
    except ValueError as error:
        raise ResetError(str(error)) from None
    ended = end_sessions(session, user, "password_changed", keep=keep)
    notify_account(session, user, "password_changed")
    audit.record(session, actor, "account.password_change", object_type="user",
                 object_id=user.id, details={"other_sessions_ended": ended})
    return True

