"""Passkeys (WebAuthn Level 2 public-key credentials) as a second kind of sign-in factor
(issue 12 item 2, docs/accounts-and-sessions.md), through Duo Labs' ``webauthn`` package:
the ceremony's checks (client data, origin, RP id hash, flags, COSE keys, signatures) are the
standard's own, done by a maintained library rather than by hand.

A passkey is added to an account that has an authenticator app already (services.mfa), so
recovery codes always exist and an admin's reset removes every factor at once. Only the
public key is kept. Its owner names it, and may rename or remove it.

The relying party is the address people open the app at (``PUBLIC_BASE_URL``): its host name
is the RP id and its origin the only one accepted. User verification is *preferred*: the
passkey is the second factor after a password, so its mere possession is what is proved.

A challenge is made for one ceremony and kept by the caller (the signed session) for
``CHALLENGE_LIFETIME``; the view takes it out before checking, so it serves once. The sign
count is recorded with a conditional UPDATE (as the TOTP step is), so of two requests with
one assertion only one passes, and a count that does not increase (a cloned authenticator)
is refused, unless the authenticator keeps no count (both zero). The challenge is the
session's, so an older copy of the cookie still holds it: an accepted passkey also changes the
account's session token, which the half-finished sign-in carries, so such a copy is stale.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from webauthn import (
    base64url_to_bytes,
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from .. import clock
from ..models import PasskeyCredential, User, new_session_token
from . import audit, mfa
from .account_notices import notify_account
from .audit import Actor

#: How long a ceremony's challenge is honoured: time to touch a key or unlock a phone.
CHALLENGE_LIFETIME = dt.timedelta(minutes=5)
MAX_NAME_LENGTH = 60
#: The parsers raise more than the library's own exceptions on malformed input (base64,
#: CBOR, a wrong type where a string was due).
_MALFORMED = (WebAuthnException, ValueError, TypeError, KeyError, IndexError)

NEEDS_AUTHENTICATOR = ("Set up an authenticator app first: a passkey is added to it, and "
                       "your recovery codes come with it.")
NOT_VERIFIED = "The passkey could not be checked. Try again, or use another passkey."
ALREADY_REGISTERED = "That passkey is already registered."


class PasskeyError(Exception):
    """A passkey that cannot be added; the message says why, for its owner."""


class PasskeyNotVerified(PasskeyError):
    """The browser's answer is not a passkey made for this site and challenge."""


@dataclass(frozen=True)
class RelyingParty:
    """Who the passkeys are for: the host name (RP id) and the one origin accepted."""

    id: str
    origin: str
    name: str = mfa.ISSUER


def relying_party(base_url: str) -> RelyingParty:
    """The relying party of the app served at ``base_url`` (``https://host[:port]``)."""
    address = urlsplit(base_url)
    return RelyingParty(id=address.hostname or "", origin=f"{address.scheme}://{address.netloc}")


def passkeys_of(session: Session, user: User) -> Sequence[PasskeyCredential]:
    """``user``'s passkeys, oldest first."""
    return session.scalars(select(PasskeyCredential).where(PasskeyCredential.user_id == user.id)
                           .order_by(PasskeyCredential.created_at, PasskeyCredential.id)).all()


def own_passkey(session: Session, user: User, passkey_id: int) -> PasskeyCredential | None:
    """The passkey ``passkey_id`` when it is ``user``'s; None otherwise (the caller answers 404,
    as for a missing one)."""
    passkey = session.get(PasskeyCredential, passkey_id)
    return passkey if passkey is not None and passkey.user_id == user.id else None


def _descriptors(session: Session, user: User) -> list[PublicKeyCredentialDescriptor]:
    return [PublicKeyCredentialDescriptor(
        id=base64url_to_bytes(passkey.credential_id),
        transports=[AuthenticatorTransport(name) for name in passkey.transports
                    if name in AuthenticatorTransport._value2member_map_])
            for passkey in passkeys_of(session, user)]


def _user_handle(user: User) -> bytes:
    # WebAuthn's user handle must not identify a person (§14.6.1); the row number does not,
    # and stays the same, so an authenticator keeps one passkey per account of this app.
    return str(user.id).encode()


def _timeout_ms() -> int:
    return int(CHALLENGE_LIFETIME.total_seconds() * 1000)


# --- registering ------------------------------------------------------------------------------

def registration_options(session: Session, user: User, rp: RelyingParty) -> tuple[str, bytes]:
    """The options for ``navigator.credentials.create`` (JSON) and their challenge, to keep
    for ``register``. The account's passkeys are excluded: an authenticator holding one says
    so instead of making a second."""
    options = generate_registration_options(
        rp_id=rp.id, rp_name=rp.name, user_name=user.email, user_id=_user_handle(user),
        timeout=_timeout_ms(), exclude_credentials=_descriptors(session, user),
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED))
    return options_to_json(options), options.challenge


def register(session: Session, actor: Actor, user: User, rp: RelyingParty, challenge: bytes,
             credential: str, name: str) -> PasskeyCredential:
    """Add the passkey ``credential`` (``navigator.credentials.create``'s answer, as JSON)
    made for ``challenge`` to ``user``'s account under ``name``; the account is told by email.
    Raises PasskeyError, storing nothing, when the account has no authenticator app, the
    credential does not verify (audited as a failure) or is registered already."""
    if not mfa.is_enrolled(user):
        raise PasskeyError(NEEDS_AUTHENTICATOR)
    try:
        parsed = parse_registration_credential_json(credential)
        verified = verify_registration_response(
            credential=parsed, expected_challenge=challenge, expected_rp_id=rp.id,
            expected_origin=rp.origin)
    except _MALFORMED as error:
        mfa.record_failure(session, actor, user, "passkey_registration")
        raise PasskeyNotVerified(NOT_VERIFIED) from error
    credential_id = bytes_to_base64url(verified.credential_id)
    if session.scalar(select(PasskeyCredential.id).where(
            PasskeyCredential.credential_id == credential_id)) is not None:
        raise PasskeyError(ALREADY_REGISTERED)
    passkey = PasskeyCredential(
        user_id=user.id, credential_id=credential_id,
        public_key=verified.credential_public_key, sign_count=verified.sign_count,
        # What the browser said the authenticator can use: a hint for signing in.
        transports=[transport.value for transport in parsed.response.transports or []],
        name=name.strip(), created_at=clock.utcnow())
    session.add(passkey)
    session.flush()
    audit.record(session, actor, "mfa.passkey_added", clinic_id=user.clinic_id,
                 object_type="user", object_id=user.id,
                 details={"passkey": passkey.id, "user_verified": verified.user_verified})
    notify_account(session, user, "factor_added")
    return passkey


def rename(session: Session, actor: Actor, user: User, passkey: PasskeyCredential,
           name: str) -> None:
    """Give ``user``'s ``passkey`` the name ``name`` (audited without it: a name is its
    owner's own words)."""
    passkey.name = name.strip()
    audit.record(session, actor, "mfa.passkey_renamed", clinic_id=user.clinic_id,
                 object_type="user", object_id=user.id, details={"passkey": passkey.id})


def remove(session: Session, actor: Actor, user: User, passkey: PasskeyCredential) -> None:
    """Remove ``user``'s ``passkey``: it no longer signs them in."""
    audit.record(session, actor, "mfa.passkey_removed", clinic_id=user.clinic_id,
                 object_type="user", object_id=user.id, details={"passkey": passkey.id})
    session.delete(passkey)
    session.flush()


# --- signing in -------------------------------------------------------------------------------

def authentication_options(session: Session, user: User,
                           rp: RelyingParty) -> tuple[str, bytes] | None:
    """The options for ``navigator.credentials.get`` (JSON), allowing ``user``'s passkeys,
    and their challenge to keep for ``check_passkey``; None when the account has none."""
    allowed = _descriptors(session, user)
    if not allowed:
        return None
    options = generate_authentication_options(
        rp_id=rp.id, timeout=_timeout_ms(), allow_credentials=allowed,
        user_verification=UserVerificationRequirement.PREFERRED)
    return options_to_json(options), options.challenge


def check_passkey(session: Session, actor: Actor, user: User, rp: RelyingParty,
                  challenge: bytes, credential: str) -> bool:
    """Whether ``credential`` (``navigator.credentials.get``'s answer, as JSON) proves one of
    ``user``'s passkeys for ``challenge``; the sign count is recorded in the same statement,
    and the half-finished sign-in's session token changed. A failure is audited (without
    anything the browser sent)."""
    passkey = _verified_passkey(session, user, rp, challenge, credential)
    if passkey is None or not _spend_awaited_sign_in(session, user):
        mfa.record_failure(session, actor, user, "passkey")
        return False
    audit.record(session, actor, "mfa.passkey_used", clinic_id=user.clinic_id,
                 object_type="user", object_id=user.id, details={"passkey": passkey.id})
    return True


def _spend_awaited_sign_in(session: Session, user: User) -> bool:
    """Change ``user``'s session token, which the half-finished sign-in carries
    (services.mfa.account_with_token), if it is still the one it was: a copy of the signed
    cookie holding the same challenge, sent with the same answer, is then refused, even for an
    authenticator whose count stays zero. Conditional, so of two such requests at once only
    one passes."""
    changed = session.execute(
        update(User).where(User.id == user.id, User.session_token == user.session_token)
        .values(session_token=new_session_token())
        .execution_options(synchronize_session=False))
    if changed.rowcount != 1:
        return False
    session.refresh(user)
    return True


def _verified_passkey(session: Session, user: User, rp: RelyingParty, challenge: bytes,
                      credential: str) -> PasskeyCredential | None:
    try:
        parsed = parse_authentication_credential_json(credential)
    except _MALFORMED:
        return None
    passkey = session.scalar(select(PasskeyCredential).where(
        PasskeyCredential.credential_id == parsed.id))
    if passkey is None or passkey.user_id != user.id:  # unknown, or another account's
        return None
    known_count = passkey.sign_count
    try:
        verified = verify_authentication_response(
            credential=parsed, expected_challenge=challenge, expected_rp_id=rp.id,
            expected_origin=rp.origin, credential_public_key=passkey.public_key,
            credential_current_sign_count=known_count)
    except _MALFORMED:
        return None
    taken = session.execute(
        update(PasskeyCredential).where(PasskeyCredential.id == passkey.id,
                                        PasskeyCredential.sign_count == known_count)
        .values(sign_count=verified.new_sign_count, last_used_at=clock.utcnow())
        .execution_options(synchronize_session=False))
    if taken.rowcount != 1:  # another request used this count meanwhile
        return None
    session.refresh(passkey)
    return passkey
