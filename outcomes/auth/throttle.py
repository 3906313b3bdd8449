"""The per-account limits, beside the per-client-address ones (SIGN_IN_RATE_LIMIT).

Wrong passwords are counted per account (the normalised email, whether or not an account has
it, so the answer never tells which exist), in the limiter's shared storage, whatever address
they come from. A device that has signed in to the account before carries a signed cookie
and is counted apart (the "device cookie" defence of the OWASP authentication cheat sheet):
an attack on an account slows the attacker down without locking its owner out.

A one-time link (a password reset, a staff invitation) names one account: the passwords
posted with it are counted per link, whatever address they come from.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

from flask import current_app, request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.wrappers import Response

from ..services.accounts import normalise_email

DEVICE_COOKIE = "known_device"
DEVICE_LIFETIME = dt.timedelta(days=180)


#: Passwords posted with one reset or invitation link, from any address: local policy, room
#: for a person whose first choices the password rules refuse, and no more. Each post costs
#: the server a password hash, so a leaked link cannot be used to keep it busy either.
LINK_PASSWORD_LIMIT = "10 per hour"


def account_limit() -> str:
    return current_app.config["ACCOUNT_SIGN_IN_LIMIT"]


def _keyed(text: str) -> str:
    # Keyed, so the limiter's storage holds no email address or link token, and no one can
    # precompute keys.
    secret = current_app.config["SECRET_KEY"].encode()
    return hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()[:32]


def _account(email: str) -> str:
    return _keyed(normalise_email(email))


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="known-device")


def _known_device(account: str) -> str | None:
    """The id of this device if its cookie says it signed in to ``account`` before."""
    cookie = request.cookies.get(DEVICE_COOKIE)
    if not cookie:
        return None
    try:
        value = _serializer().loads(cookie, max_age=int(DEVICE_LIFETIME.total_seconds()))
    except BadSignature:
        return None
    if not isinstance(value, dict) or value.get("account") != account:
        return None
    return value.get("device")


def account_key() -> str:
    """The throttle's key for this sign-in attempt: the account, and the device if known."""
    account = _account(request.form.get("email", ""))
    device = _known_device(account)
    return f"account:{account}" + (f":device:{device}" if device else "")


def link_key() -> str:
    """The throttle's key for a password posted with a one-time link: the link, that is its
    one account. (A made-up token names none: guesses are held by the per-client limit and
    the tokens' 256 bits.)"""
    return "link:" + _keyed(request.form.get("token", "").strip())


def is_failed_sign_in(response: Response) -> bool:
    """Only wrong passwords count against an account (the sign-in page answers them 401)."""
    return response.status_code == 401


def remember_device(response: Response, email: str) -> None:
    """Mark this device as one that signed in to the account, for the throttle."""
    account = _account(email)
    device = _known_device(account) or secrets.token_hex(8)
    response.set_cookie(
        DEVICE_COOKIE, _serializer().dumps({"account": account, "device": device}),
        max_age=int(DEVICE_LIFETIME.total_seconds()), httponly=True, samesite="Lax",
        secure=current_app.config["SESSION_COOKIE_SECURE"])
