"""Signed-in sessions, a row each (``UserSession``, issue 12 item 3): begun at every sign-in,
checked on every request, and ended by signing out, by timing out, by their owner from their
sessions page, by an admin, or by a change to the account (deactivation, a new password, a
password reset, a reset of the sign-in factors).

The session cookie holds a random secret; only its SHA-256 is stored (services.tokens), so a
copy of the database signs nobody in. Each request looks its row up: a session ended here is
refused by every worker and host at its next request.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from ..models import User, UserSession, new_session_token, utcnow
from . import audit
from .audit import Actor
from .tokens import could_be_token, new_token, token_hash

#: The session cookie's key for the session's secret.
COOKIE_KEY = "_session"
#: A session's last activity is written at most this often, not at every request; so it may
#: be up to this much older than the session's true last request.
LAST_SEEN_INTERVAL = dt.timedelta(minutes=1)
#: The reason of a session ended by its idle timeout or cap (models.SESSION_END_REASONS).
TIMED_OUT = "timed_out"

#: Browsers by a token of their User-Agent, most specific first: Edge, Opera and Samsung
#: Internet say "Chrome" too, and Chrome says "Safari".
_BROWSERS = (("Edg", "Edge"), ("OPR", "Opera"), ("SamsungBrowser", "Samsung Internet"),
             ("Firefox", "Firefox"), ("FxiOS", "Firefox"), ("CriOS", "Chrome"),
             ("Chrome", "Chrome"), ("Safari", "Safari"))
#: Systems by a token of their User-Agent; Android before Linux, which it names too.
_SYSTEMS = (("iPhone", "iPhone"), ("iPad", "iPad"), ("Android", "Android"),
            ("CrOS", "ChromeOS"), ("Windows", "Windows"), ("Macintosh", "macOS"),
            ("Linux", "Linux"))
UNKNOWN_DEVICE = "Unknown browser"


def device_label(user_agent: str | None) -> str:
    """A short, human name of the browser and system a User-Agent says it is ("Chrome on
    Android"), for the sessions list. Only what the list needs: the person recognises their
    own devices, nothing is decided on it."""
    agent = user_agent or ""
    browser = next((name for token, name in _BROWSERS if f"{token}/" in agent), None)
    system = next((name for token, name in _SYSTEMS if token in agent), None)
    if browser and system:
        return f"{browser} on {system}"
    return browser or (f"A browser on {system}" if system else UNKNOWN_DEVICE)


def begin_session(session: Session, user: User, user_agent: str | None,
                  ip_address: str | None) -> str:
    """A new open session of ``user``; returns its secret, for the session cookie only."""
    secret = new_token()
    session.add(UserSession(user_id=user.id, secret_hash=token_hash(secret),
                            device=device_label(user_agent)[:80], ip_address=ip_address))
    session.flush()
    return secret


def signed_in_user(session: Session, user_id: int,
                   secret: object) -> tuple[User, UserSession] | None:
    """The active user ``user_id`` and their session whose cookie holds ``secret``, while it
    is open; or once it has timed out, for the request that finds its own time up to answer
    (auth.sessions: a form it sent is held, a second tap of it too). None otherwise (never
    begun, ended, or the account deactivated). One statement: it runs at every request."""
    if not isinstance(secret, str) or not could_be_token(secret):
        return None
    found = session.execute(
        select(User, UserSession).join(UserSession, UserSession.user_id == User.id)
        .where(User.id == user_id, User.active.is_(True),
               UserSession.secret_hash == token_hash(secret),
               or_(UserSession.ended_at.is_(None), UserSession.ended_reason == TIMED_OUT))
    ).first()
    return None if found is None else (found[0], found[1])


def note_activity(user_session: UserSession, now: dt.datetime) -> None:
    """Record a request of the session, once a ``LAST_SEEN_INTERVAL`` at most."""
    if now - user_session.last_seen_at >= LAST_SEEN_INTERVAL:
        user_session.last_seen_at = now


def has_lapsed(user_session: UserSession, idle_limit: dt.timedelta, cap: dt.timedelta,
               now: dt.datetime) -> bool:
    """Whether the session is past its absolute cap, or idle beyond ``idle_limit`` even
    allowing for the last activity it was not worth writing."""
    return (now - user_session.created_at > cap
            or now - user_session.last_seen_at >= idle_limit + LAST_SEEN_INTERVAL)


def active_sessions(session: Session, user: User, idle_limit: dt.timedelta,
                    cap: dt.timedelta, now: dt.datetime) -> list[UserSession]:
    """The user's sessions still open (neither ended nor lapsed), the latest active first."""
    rows = session.scalars(select(UserSession).where(
        UserSession.user_id == user.id, UserSession.ended_at.is_(None))
        .order_by(UserSession.last_seen_at.desc(), UserSession.id.desc()))
    return [row for row in rows if not has_lapsed(row, idle_limit, cap, now)]


def own_session(session: Session, user: User, session_id: int) -> UserSession | None:
    """One of the user's own sessions, open or ended (None for another's, or a missing one,
    which the page answers alike: 404)."""
    return session.scalar(select(UserSession).where(UserSession.id == session_id,
                                                    UserSession.user_id == user.id))


def end_session(user_session: UserSession, reason: str) -> None:
    """End one session (signed out, timed out, or ended from another of its owner's)."""
    if user_session.ended_at is None:
        user_session.ended_at = utcnow()
        user_session.ended_reason = reason


def end_sessions(session: Session, user: User, reason: str, *,
                 keep: UserSession | None = None) -> int:
    """End every open session of ``user`` but ``keep``; returns how many ended.

    Sessions that timed out take ``reason`` too (keeping when they ended): the loader still
    accepts a timed-out one, to hold the answers its page sends, and a copy of its cookie must
    not hold answers or raise alerts once its owner has ended their sessions.

    A sign-in halfway through (the password given, the second factor awaited) has no session
    yet: it carries the account's session token (services.mfa.account_with_token), which
    changes here, so it cannot be completed either."""
    now = utcnow()
    rows = [UserSession.user_id == user.id]
    if keep is not None:
        rows.append(UserSession.id != keep.id)
    session.execute(update(UserSession).where(*rows, UserSession.ended_reason == TIMED_OUT)
                    .values(ended_reason=reason)
                    .execution_options(synchronize_session="fetch"))
    ended = session.execute(update(UserSession).where(*rows, UserSession.ended_at.is_(None))
                            .values(ended_at=now, ended_reason=reason)
                            .execution_options(synchronize_session="fetch")).rowcount
    user.session_token = new_session_token()
    return ended


def end_own_session(session: Session, actor: Actor, user_session: UserSession) -> bool:
    """The owner (``actor``) ends one of their sessions from another; audited. False when it
    had ended already."""
    if user_session.ended_at is not None:
        return False
    end_session(user_session, "ended_by_user")
    audit.record(session, actor, "session.end", object_type="user_session",
                 object_id=user_session.id, details={"device": user_session.device})
    return True


def end_own_sessions(session: Session, actor: Actor, *, keep: UserSession | None) -> int:
    """The owner (``actor``) signs out everywhere else (``keep``: the session they are in) or
    everywhere (``keep`` None); audited with how many ended."""
    user = actor.user
    assert user is not None
    reason = "signed_out_everywhere" if keep is None else "ended_by_user"
    ended = end_sessions(session, user, reason, keep=keep)
    audit.record(session, actor, "session.end_all" if keep is None else "session.end_others",
                 object_type="user", object_id=user.id, details={"sessions_ended": ended})
    return ended
