"""Passkeys (WebAuthn) as a second sign-in factor (issue 12 item 2, services/passkeys.py):
adding one from one's security page after confirming it is you, naming, renaming and removing
it, and signing in with it at the second step, beside the code.

The page's script (static/js/passkeys.js) asks the server for a ceremony's options, hands them
to the browser, and posts the authenticator's answer back; the answers to the script are JSON
(``{"redirect": ...}`` or ``{"error": ...}``). Without script, or without WebAuthn in the
browser, the passkey buttons stay hidden and codes work as before.

A ceremony's challenge is kept in the signed session with what it is for, whose it is and
when it was made; it is taken out before its answer is checked, so it serves once, and is
refused after ``passkeys.CHALLENGE_LIFETIME``. Taken out of this cookie only: a sign-in's
older copy still holds it, so the accepted passkey also changes the account's session token
(services.passkeys.check_passkey), and the copy's half-finished sign-in is then stale.
"""
from __future__ import annotations

import base64
from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from ..extensions import db, limiter
from ..models import PasskeyCredential, User, utcnow
from ..services import mfa, passkeys
from ..services.passkeys import PasskeyError, PasskeyNotVerified, RelyingParty
from ..web import current_actor, keep_writes_despite_refusal
from . import throttle
from .forms import NewPasskeyForm, PasskeyAnswerForm, RemovePasskeyForm, RenamePasskeyForm
from .mfa import (
    awaiting_second_step,
    code_limit,
    fresh_authentication_required,
    second_factor_key,
    signed_in_with_second_factor,
)
from .views import bp, sign_in_limit

#: The session key of the current ceremony: what it is for, whose, its challenge, when made.
CEREMONY = "_passkey_ceremony"
REGISTER, SIGN_IN = "register", "sign_in"

TOO_SLOW = "That took too long, or was sent twice. Try again."
PASSKEY_REFUSED = "That passkey is not one of this account's, or it could not be checked. " \
                  "Try again, or use your code."

JSONAnswer = tuple[dict[str, Any], int]


def _relying_party() -> RelyingParty:
    """The app's address as people open it (PUBLIC_BASE_URL; in development, the request's)."""
    return passkeys.relying_party(current_app.config["PUBLIC_BASE_URL"] or request.host_url)


def _begin(purpose: str, user: User, challenge: bytes, **extra: str) -> None:
    session[CEREMONY] = {"for": purpose, "user": user.id, "at": utcnow().timestamp(),
                         "challenge": base64.urlsafe_b64encode(challenge).decode(), **extra}


def _take_ceremony(purpose: str, user: User) -> dict[str, Any] | None:
    """The ceremony begun for ``purpose`` by ``user``, taken out of the session (it serves
    once), with its challenge as bytes; None when there is none, or it is too old."""
    ceremony = session.pop(CEREMONY, None)
    if (not isinstance(ceremony, dict) or ceremony.get("for") != purpose
            or ceremony.get("user") != user.id
            or utcnow().timestamp() - ceremony.get("at", 0)
            > passkeys.CHALLENGE_LIFETIME.total_seconds()):
        return None
    return {**ceremony, "challenge": base64.urlsafe_b64decode(ceremony["challenge"])}


def _options(options_json: str) -> Response:
    return current_app.response_class(options_json, mimetype="application/json")


def _refused(message: str, status: int = 400) -> JSONAnswer:
    return {"error": message}, status


def _first_error(form: Any) -> str:
    return next(iter(form.errors.values()))[0]


# --- signing in -------------------------------------------------------------------------------

@bp.post("/login/passkey/options")
@limiter.limit(sign_in_limit)
def passkey_sign_in_options() -> Response | JSONAnswer:
    """The options of a passkey sign-in for the account whose password was just given."""
    user = awaiting_second_step(enrolled=True)
    if isinstance(user, Response):
        return user
    options = passkeys.authentication_options(db.session, user, _relying_party())
    if options is None:
        return _refused("This account has no passkey: use your code.", 409)
    options_json, challenge = options
    _begin(SIGN_IN, user, challenge)
    return _options(options_json)


@bp.post("/login/passkey")
@limiter.limit(sign_in_limit)
@limiter.limit(code_limit, key_func=second_factor_key, deduct_when=throttle.is_failed_sign_in)
def passkey_sign_in() -> Response | JSONAnswer:
    """The second step by passkey: signed in exactly as by a code."""
    user = awaiting_second_step(enrolled=True)
    if isinstance(user, Response):
        return user
    form = PasskeyAnswerForm()
    if not form.validate_on_submit():
        return _refused(_first_error(form))
    ceremony = _take_ceremony(SIGN_IN, user)
    if ceremony is None:
        return _refused(TOO_SLOW)
    if not passkeys.check_passkey(db.session, current_actor(), user, _relying_party(),
                                  ceremony["challenge"], form.credential.data):
        keep_writes_despite_refusal()  # the failure stays in the audit trail
        return _refused(PASSKEY_REFUSED, 401)
    return signed_in_with_second_factor(user, "passkey",
                                        lambda going_to: {"redirect": going_to})


# --- one's own passkeys -----------------------------------------------------------------------

def _own_passkey(passkey_id: object) -> PasskeyCredential:
    """The signed-in person's passkey ``passkey_id`` (a form's); 404 for any other, or none."""
    passkey = passkeys.own_passkey(db.session, current_user, passkey_id) \
        if isinstance(passkey_id, int) else None
    if passkey is None:
        abort(404)
    return passkey


def _enrolled_or_back() -> Response | None:
    """Back to the security page, saying why, when the account has no authenticator app."""
    if mfa.is_enrolled(current_user):
        return None
    flash(passkeys.NEEDS_AUTHENTICATOR, "info")
    return redirect(url_for("auth.security"))


@bp.get("/account/security/passkeys/new")
@login_required
@fresh_authentication_required
def new_passkey() -> Response | str:
    return _enrolled_or_back() or render_template("auth/passkey_new.html", form=NewPasskeyForm())


@bp.post("/account/security/passkeys/options")
@login_required
@fresh_authentication_required
def passkey_registration_options() -> Response | JSONAnswer:
    """The options of a new passkey, once its name is given."""
    not_enrolled = _enrolled_or_back()
    if not_enrolled is not None:
        return not_enrolled
    form = NewPasskeyForm()
    if not form.validate_on_submit():
        return _refused(_first_error(form), 422)
    user = current_user._get_current_object()
    options_json, challenge = passkeys.registration_options(db.session, user, _relying_party())
    _begin(REGISTER, user, challenge, name=form.name.data.strip())
    return _options(options_json)


@bp.post("/account/security/passkeys")
@login_required
@fresh_authentication_required
@limiter.limit(code_limit, key_func=second_factor_key, deduct_when=throttle.is_failed_sign_in)
def add_passkey() -> Response | JSONAnswer:
    """The new passkey the authenticator made, checked and kept under its name."""
    user = current_user._get_current_object()
    form = PasskeyAnswerForm()
    if not form.validate_on_submit():
        return _refused(_first_error(form))
    ceremony = _take_ceremony(REGISTER, user)
    if ceremony is None:
        return _refused(TOO_SLOW)
    try:
        passkey = passkeys.register(db.session, current_actor(), user, _relying_party(),
                                    ceremony["challenge"], form.credential.data,
                                    ceremony["name"])
    except PasskeyError as error:
        keep_writes_despite_refusal()  # a credential that did not verify stays audited
        return _refused(str(error), 401 if isinstance(error, PasskeyNotVerified) else 409)
    flash(f"Your passkey “{passkey.name}” is added. Next time you sign in, you can use it "
          "instead of a code.", "info")
    return {"redirect": url_for("auth.security")}, 200


@bp.post("/account/security/passkeys/rename")
@login_required
def rename_passkey() -> Response:
    form = RenamePasskeyForm()
    valid = form.validate_on_submit()
    passkey = _own_passkey(form.passkey_id.data)
    if not valid:
        flash(f"The name was not changed: {_first_error(form)}", "error")
        return redirect(url_for("auth.security"))
    passkeys.rename(db.session, current_actor(), current_user._get_current_object(), passkey,
                    form.name.data)
    flash(f"The passkey is now called “{passkey.name}”.", "info")
    return redirect(url_for("auth.security"))


@bp.post("/account/security/passkeys/remove")
@login_required
@fresh_authentication_required
def remove_passkey() -> Response:
    form = RemovePasskeyForm()
    form.validate_on_submit()
    passkey = _own_passkey(form.passkey_id.data)
    name = passkey.name
    passkeys.remove(db.session, current_actor(), current_user._get_current_object(), passkey)
    flash(f"The passkey “{name}” is removed: it no longer signs you in.", "info")
    return redirect(url_for("auth.security"))
