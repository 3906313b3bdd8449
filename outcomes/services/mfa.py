"""Multi-factor authentication (issue 12, docs/accounts-and-sessions.md): an authenticator
app's codes (TOTP, RFC 6238) and one-time recovery codes; required of staff, open to patients.
Passkeys, a second kind of factor added to an enrolled account, are services/passkeys.py.

The shared secret is stored encrypted (Fernet: AES-128-CBC with HMAC-SHA256) under a key
derived from ``SECRET_KEY`` with HKDF, so a copy of the database alone (a backup, a replica)
holds no usable secret. Whoever has ``SECRET_KEY`` can forge any session anyway, so a key of
its own would protect nothing more and would be one more secret to lose. Rotation: the old
``SECRET_KEY`` goes into ``SECRET_KEY_FALLBACKS``; secrets it sealed still open, and each is
sealed again under the new key at its owner's next accepted code.

A code is accepted for the 30-second step it belongs to, one step either side of the server's
(clock drift), and only for a step later than the last one accepted: the step is written with
a conditional UPDATE, so of two requests sending one code at once only one passes.

Recovery codes are 12 random characters (about 59 bits) from an alphabet without look-alike
characters; each is stored as an HMAC-SHA256 under a key derived from ``SECRET_KEY``. A slow
password hash (argon2) guards guessable secrets; these are random and long, so a fast keyed
hash is as safe, lets a code be found by a single indexed comparison and used once by a
conditional UPDATE, and a database copy without the key cannot even test a guess.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import pyotp
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from .. import clock
from ..config import staff_mfa_required
from ..models import STAFF_ROLES, PasskeyCredential, RecoveryCode, User
from . import audit
from .account_notices import notify_account
from .audit import Actor
from .user_sessions import end_sessions

#: RFC 6238's time step, and how many steps either side of the server's a code may be from.
STEP_SECONDS = 30
DRIFT_STEPS = 1
CODE_DIGITS = 6
#: The name authenticator apps list the account under.
ISSUER = "Outcomes"
RECOVERY_CODE_COUNT = 10
RECOVERY_CODE_LENGTH = 12
#: No 0/o, 1/l/i: a code copied from paper is typed back as written.
RECOVERY_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
_SECRET_PURPOSE = b"outcomes: authenticator secrets"
_RECOVERY_PURPOSE = b"outcomes: recovery codes"


# --- keys ------------------------------------------------------------------------------------

@lru_cache(maxsize=16)
def _derived_key(secret_key: str, purpose: bytes) -> bytes:
    """32 bytes for ``purpose`` from ``secret_key`` (HKDF-SHA256, RFC 5869)."""
    return HKDF(algorithm=SHA256(), length=32, salt=None, info=purpose).derive(
        secret_key.encode())


def _secret_keys(config: Mapping[str, Any]) -> list[str]:
    """``SECRET_KEY`` first, then the older keys still honoured (``SECRET_KEY_FALLBACKS``)."""
    return [config["SECRET_KEY"], *config.get("SECRET_KEY_FALLBACKS", ())]


def _fernets(config: Mapping[str, Any]) -> list[Fernet]:
    return [Fernet(base64.urlsafe_b64encode(_derived_key(key, _SECRET_PURPOSE)))
            for key in _secret_keys(config)]


def _fernet(config: Mapping[str, Any]) -> MultiFernet:
    """Seals under the current key; opens what any honoured key sealed."""
    return MultiFernet(_fernets(config))


def seal(config: Mapping[str, Any], secret: str) -> str:
    """``secret`` encrypted for storage (in the database, or in a session cookie)."""
    return _fernet(config).encrypt(secret.encode()).decode()


def unseal(config: Mapping[str, Any], sealed: str) -> str | None:
    """The secret ``sealed`` holds, or None when no honoured key opens it."""
    try:
        return _fernet(config).decrypt(sealed.encode()).decode()
    except InvalidToken:
        return None


def _sealed_by_an_old_key(config: Mapping[str, Any], sealed: str) -> bool:
    try:
        _fernets(config)[0].decrypt(sealed.encode())
    except InvalidToken:
        return True
    return False


# --- enrolment -------------------------------------------------------------------------------

def new_secret() -> str:
    """A fresh shared secret (160 random bits, base32, as RFC 4226 recommends)."""
    return pyotp.random_base32()


def provisioning_uri(user: User, secret: str) -> str:
    """The otpauth:// URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)


def account_with_token(session: Session, user_id: object, token: object) -> User | None:
    """The active account ``user_id`` while its session token is still ``token`` (signing out
    everywhere, or a reset, changes it); None otherwise."""
    user = session.get(User, user_id) if isinstance(user_id, int) else None
    if (user is None or not user.active or not isinstance(token, str)
            or not hmac.compare_digest(user.session_token, token)):
        return None
    return user


def is_enrolled(user: User) -> bool:
    return user.mfa_enrolled_at is not None


def second_factor_required(user: User, config: Mapping[str, Any]) -> bool:
    """Whether signing in as ``user`` takes a second factor: always once one is enrolled, and
    for staff when ``STAFF_MFA_REQUIRED`` is on (always in production) or their clinic
    requires it."""
    return is_enrolled(user) or (user.role in STAFF_ROLES and (
        staff_mfa_required(config) or user.clinic.staff_mfa_required))


def step_at(moment: dt.datetime) -> int:
    return int(moment.timestamp()) // STEP_SECONDS


def code_at(secret: str, step: int) -> str:
    """The code of ``step`` for ``secret`` (what the authenticator app shows then)."""
    return pyotp.TOTP(secret).generate_otp(step)


def matching_step(secret: str, code: str, now: dt.datetime) -> int | None:
    """The step within the drift window whose code ``code`` is, or None."""
    code = code.strip().replace(" ", "")
    if len(code) != CODE_DIGITS or not code.isdigit():
        return None
    current = step_at(now)
    matched = None
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        # Every step compared, in constant time: the answer's timing tells nothing.
        if hmac.compare_digest(code_at(secret, step), code):
            matched = step
    return matched


def enrol(session: Session, actor: Actor, user: User, config: Mapping[str, Any], secret: str,
          code: str) -> list[str] | None:
    """Store ``secret`` as ``user``'s authenticator once ``code`` shows the app has it, and
    issue a new set of recovery codes (replacing any earlier); the codes to show once, or None
    when ``code`` is not the app's (nothing stored)."""
    now = clock.utcnow()
    step = matching_step(secret, code, now)
    if step is None:
        record_failure(session, actor, user, "enrolment")
        return None
    replaced = is_enrolled(user)
    user.totp_secret = seal(config, secret)
    user.totp_last_step = step  # the code just typed is used
    user.mfa_enrolled_at = now
    audit.record(session, actor, "mfa.enrolled", clinic_id=user.clinic_id, object_type="user",
                 object_id=user.id, details={"replaced": replaced})
    notify_account(session, user, "factor_added")
    return issue_recovery_codes(session, actor, user, config)


# --- checking a code -------------------------------------------------------------------------

def accept_totp(session: Session, user: User, config: Mapping[str, Any], code: str) -> bool:
    """Whether ``code`` is ``user``'s authenticator's, for a step after the last accepted one;
    the step is recorded in the same statement, so a code is never accepted twice."""
    if user.totp_secret is None:
        return False
    secret = unseal(config, user.totp_secret)
    if secret is None:
        return False
    step = matching_step(secret, code, clock.utcnow())
    if step is None:
        return False
    taken = session.execute(
        update(User).where(User.id == user.id, or_(User.totp_last_step.is_(None),
                                                    User.totp_last_step < step))
        .values(totp_last_step=step).execution_options(synchronize_session=False))
    if taken.rowcount != 1:
        return False
    session.refresh(user)
    if _sealed_by_an_old_key(config, user.totp_secret):
        user.totp_secret = seal(config, secret)
    return True


def _code_hashes(config: Mapping[str, Any], code: str) -> list[str]:
    """The stored forms ``code`` may have: one per honoured key."""
    normal = normalise_recovery_code(code)
    return [hmac.new(_derived_key(key, _RECOVERY_PURPOSE), normal.encode(),
                     hashlib.sha256).hexdigest() for key in _secret_keys(config)]


def normalise_recovery_code(code: str) -> str:
    """As typed, whatever the case, spaces or dashes."""
    return "".join(character for character in code.lower() if character.isalnum())


def use_recovery_code(session: Session, user: User, config: Mapping[str, Any],
                      code: str) -> bool:
    """Whether ``code`` is one of ``user``'s unused recovery codes; it is used up at once
    (a conditional UPDATE: two requests sending it together cannot both pass)."""
    if len(normalise_recovery_code(code)) != RECOVERY_CODE_LENGTH:
        return False
    taken = session.execute(
        update(RecoveryCode).where(RecoveryCode.user_id == user.id,
                                   RecoveryCode.used_at.is_(None),
                                   RecoveryCode.code_hash.in_(_code_hashes(config, code)))
        .values(used_at=clock.utcnow()).execution_options(synchronize_session=False))
    return taken.rowcount >= 1


def check_second_factor(session: Session, actor: Actor, user: User, config: Mapping[str, Any],
                        code: str) -> str | None:
    """How ``code`` proves ``user``'s second factor: "totp", "recovery_code", or None (audited
    as a failure, without the code)."""
    compact = code.strip().replace(" ", "")
    if compact.isdigit() and len(compact) == CODE_DIGITS:
        if accept_totp(session, user, config, compact):
            return "totp"
        kind = "totp"
    elif use_recovery_code(session, user, config, code):
        audit.record(session, actor, "mfa.recovery_code_used", clinic_id=user.clinic_id,
                     object_type="user", object_id=user.id,
                     details={"left": recovery_codes_left(session, user)})
        return "recovery_code"
    else:
        kind = "recovery_code"
    record_failure(session, actor, user, kind)
    return None


def record_failure(session: Session, actor: Actor, user: User, kind: str) -> None:
    """Audit a wrong code or password given for ``user`` (what kind, never what was given)."""
    audit.record(session, actor, "mfa.failed", clinic_id=user.clinic_id, object_type="user",
                 object_id=user.id, details={"kind": kind})


# --- recovery codes --------------------------------------------------------------------------

def issue_recovery_codes(session: Session, actor: Actor, user: User,
                         config: Mapping[str, Any]) -> list[str]:
    """A new set of recovery codes for ``user``, replacing the old (used or not); returned
    to show once, grouped in fours for reading: only their keyed hashes are kept."""
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = ["".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))
             for _ in range(RECOVERY_CODE_COUNT)]
    now = clock.utcnow()
    session.add_all(RecoveryCode(user_id=user.id, code_hash=_code_hashes(config, code)[0],
                                 created_at=now) for code in codes)
    session.flush()
    audit.record(session, actor, "mfa.recovery_codes_issued", clinic_id=user.clinic_id,
                 object_type="user", object_id=user.id, details={"count": len(codes)})
    return [grouped(code) for code in codes]


def grouped(code: str, separator: str = "-") -> str:
    """``code`` in groups of four characters, for reading and typing."""
    return separator.join(code[start:start + 4] for start in range(0, len(code), 4))


def recovery_codes_left(session: Session, user: User) -> int:
    return session.scalar(select(func.count()).select_from(RecoveryCode).where(
        RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))) or 0


# --- an admin's reset ------------------------------------------------------------------------

def reset_factors(session: Session, actor: Actor, colleague: User) -> None:
    """Staff of ``colleague``'s clinic (``actor``: an admin for a colleague, the patient's care
    team for a patient) remove ``colleague``'s authenticator, recovery codes and passkeys:
    their sessions end, staff enrol again at their next sign-in (a patient need not), and both
    are told by email."""
    admin = actor.user
    assert admin is not None and admin.clinic_id == colleague.clinic_id
    had_authenticator = is_enrolled(colleague)
    colleague.totp_secret = None
    colleague.totp_last_step = None
    colleague.mfa_enrolled_at = None
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == colleague.id))
    # A passkey is a second factor beside the authenticator (services.passkeys): one left
    # behind would let a lost or stolen device still sign in after the reset.
    passkeys = session.execute(delete(PasskeyCredential).where(
        PasskeyCredential.user_id == colleague.id).execution_options(synchronize_session=False))
    end_sessions(session, colleague, "factors_reset")
    for recipient in {admin.id: admin, colleague.id: colleague}.values():
        notify_account(session, recipient, "factors_reset")
    audit.record(session, actor, "mfa.factors_reset", clinic_id=colleague.clinic_id,
                 object_type="user", object_id=colleague.id,
                 details={"had_authenticator": had_authenticator,
                          "passkeys_removed": passkeys.rowcount})


def clinic_colleague(session: Session, clinic_id: int, user_id: int) -> User | None:
    """The staff account ``user_id`` of ``clinic_id``, or None (another clinic's, a
    patient's, missing: the caller answers 404 for each)."""
    user = session.get(User, user_id)
    if user is None or user.clinic_id != clinic_id or user.role not in STAFF_ROLES:
        return None
    return user
