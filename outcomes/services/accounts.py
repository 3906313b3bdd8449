"""Clinics, staff accounts, passwords and sign-in."""
from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from flask import current_app, g
from flask import session as cookie
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..clock import is_zone_name
from ..extensions import db
from ..models import STAFF_ROLES, Clinic, User
from . import audit
from .audit import Actor
from .user_sessions import COOKIE_KEY, signed_in_user

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256


class AccountError(ValueError):
    """A request about clinics or accounts that cannot be carried out, with the reason."""


@lru_cache(maxsize=4)
def _hasher(time_cost: int, memory_cost: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)


def password_hasher() -> PasswordHasher:
    """The argon2id hasher with the app's configured parameters."""
    config = current_app.config
    return _hasher(
        config["ARGON2_TIME_COST"], config["ARGON2_MEMORY_COST_KIB"], config["ARGON2_PARALLELISM"]
    )


def hash_password(password: str) -> str:
    """Hash a password with argon2id, after checking it is acceptable."""
    check_password_strength(password)
    return password_hasher().hash(password)


def check_password_strength(password: str) -> None:
    """Length is what matters (NIST SP 800-63B): at least 12 characters, no composition rules."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"The password must have at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AccountError(f"The password must have at most {MAX_PASSWORD_LENGTH} characters.")


@lru_cache(maxsize=4)
def _dummy_hash(time_cost: int, memory_cost: int, parallelism: int) -> str:
    return _hasher(time_cost, memory_cost, parallelism).hash("no account has this password")


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The active user with this email and password, or None.

    The same argon2 work is done whether or not the email exists, so timing does not tell
    an attacker which addresses have accounts.
    """
    hasher = password_hasher()
    user = session.scalar(select(User).where(User.email == normalise_email(email)))
    config = current_app.config
    stored = user.password_hash if user is not None else _dummy_hash(
        config["ARGON2_TIME_COST"], config["ARGON2_MEMORY_COST_KIB"], config["ARGON2_PARALLELISM"]
    )
    try:
        hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.active:
        return None
    if hasher.check_needs_rehash(stored):
        user.password_hash = hasher.hash(password)
    return user


def password_matches(user: User, password: str) -> bool:
    """Whether ``password`` is ``user``'s (for a change of password, which asks for it)."""
    try:
        return password_hasher().verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def normalise_email(email: str) -> str:
    """Emails are compared case-insensitively; they are stored lower-cased and trimmed."""
    return email.strip().lower()


def load_user(session_id: str) -> User | None:
    """Flask-Login's user loader: the active user whose open session (services.user_sessions)
    this request's cookie holds the secret of, else None. The session found is kept on ``g``
    for the request (auth.sessions notes its activity, or ends it)."""
    # Flask-Login's id is the user's (User.get_id); the row says whether the session is open.
    if not session_id.isdigit():
        return None
    found = signed_in_user(db.session, int(session_id), cookie.get(COOKIE_KEY))
    if found is None:
        return None
    user, g.user_session = found
    return user


def create_clinic(
    session: Session, actor: Actor, name: str, crisis_phone: str, timezone: str
) -> Clinic:
    """Create a clinic; names are unique."""
    name, crisis_phone = name.strip(), crisis_phone.strip()
    if not name:
        raise AccountError("The clinic needs a name.")
    if not crisis_phone:
        raise AccountError("The clinic needs a crisis phone number to show patients.")
    if not is_zone_name(timezone):
        raise AccountError(f"Unknown time zone {timezone!r}; use an IANA name such as "
                           "America/New_York.")
    if session.scalar(select(Clinic.id).where(func.lower(Clinic.name) == name.lower())):
        raise AccountError(f"A clinic named {name!r} already exists.")
    clinic = Clinic(name=name, crisis_phone=crisis_phone, timezone=timezone)
    session.add(clinic)
    session.flush()
    audit.record(session, actor, "clinic.create", clinic_id=clinic.id, object_type="clinic",
                 object_id=clinic.id, details={"name": name})
    return clinic


def find_clinic(session: Session, name: str) -> Clinic | None:
    """The clinic with this name (case-insensitive), or None."""
    return session.scalar(select(Clinic).where(func.lower(Clinic.name) == name.strip().lower()))


def create_staff_user(
    session: Session, actor: Actor, clinic: Clinic, role: str, email: str, password: str
) -> User:
    """Create a clinician or admin account at a clinic."""
    if role not in STAFF_ROLES:
        raise AccountError(f"Role must be one of {', '.join(STAFF_ROLES)}, not {role!r}.")
    user = User(
        clinic_id=clinic.id,
        email=checked_new_email(session, email),
        role=role,
        password_hash=hash_password(password),
    )
    session.add(user)
    session.flush()
    audit.record(session, actor, "user.create", clinic_id=clinic.id, object_type="user",
                 object_id=user.id, details={"role": role})
    return user


def checked_new_email(session: Session, email: str) -> str:
    """The normalised email, refused when malformed or already in use."""
    try:
        email = validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as error:
        raise AccountError(f"{email.strip()!r} is not a valid email address: {error}") from None
    if session.scalar(select(User.id).where(User.email == email)):
        raise AccountError("An account with this email address already exists.")
    return email
