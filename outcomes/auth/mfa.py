"""The second factor of signing in (services/mfa.py, docs/accounts-and-sessions.md): the
code page and the authenticator's enrolment after a right password, one's own security page
(a new authenticator, new recovery codes, passkeys: each after confirming it is them), and an
admin's reset of a colleague's factors. Staff must have a second factor; patients may add
one, and once they have, their sign-in asks for it. Passkeys' own routes are passkeys.py.

After the password, the session holds only ``AWAITING_SECOND_FACTOR`` (views.py): nobody is
signed in, so every other page still asks to sign in. It lasts ``AWAITING_LIFETIME`` and
ends if the account's sessions are ended meanwhile.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import segno
from flask import (
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required
from markupsafe import Markup
from werkzeug.wrappers import Response

from ..extensions import db, limiter
from ..models import User, utcnow
from ..services import mfa, passkeys
from ..services.accounts import authenticate
from ..services.patients import clinic_staff
from ..web import current_actor, keep_writes_despite_refusal
from . import throttle
from .access import roles_required, safe_next_path
from .forms import (
    ConfirmIdentityForm,
    EnrolAuthenticatorForm,
    ResetFactorsForm,
    SecondFactorForm,
)
from .views import (
    AWAITING_SECOND_FACTOR,
    bp,
    complete_sign_in,
    destination,
    home_for,
    sign_in_limit,
)

#: How long the code page waits after the password: enough to find the phone, not a day.
AWAITING_LIFETIME = dt.timedelta(minutes=10)
#: How recent a password or code must be to change factors (OWASP ASVS 5, re-authentication).
FRESH_FOR = dt.timedelta(minutes=5)
#: The session key of the last time the person proved it was them (password or fresh code).
AUTHENTICATED_AT = "_authenticated_at"
#: The session key of a new authenticator's secret (sealed) until its first code confirms it.
NEW_SECRET = "_new_authenticator"

WRONG_CODE = "That code is not right, or was used already. Try the code your app shows now."
START_AGAIN = "Sign in again: the time to give your code ran out."

View = TypeVar("View", bound=Callable[..., Any])
admin_required = roles_required("admin")


def code_limit() -> str:
    return current_app.config["MFA_CODE_LIMIT"]


def second_factor_key() -> str:
    """The per-account throttle key of a code (or a re-authentication) attempt."""
    user = awaiting_user() if not current_user.is_authenticated else current_user
    return f"second-factor:{user.id if user is not None else 'none'}"


def awaiting_user() -> User | None:
    """The account whose password this session gave, while its second factor is awaited."""
    awaiting = session.get(AWAITING_SECOND_FACTOR)
    if not isinstance(awaiting, dict):
        return None
    if utcnow().timestamp() - awaiting.get("at", 0) > AWAITING_LIFETIME.total_seconds():
        session.pop(AWAITING_SECOND_FACTOR)
        return None
    return mfa.account_with_token(db.session, awaiting.get("user"), awaiting.get("token"))


def signed_in_with_second_factor(user: User, factor: str,
                                 page: Callable[[str], str | dict[str, str]] | None = None
                                 ) -> Response:
    """Sign ``user`` in after their second factor, on to where they were going; or answer
    ``page``, given that destination, on the way (a page, or JSON for a script)."""
    next_path = session[AWAITING_SECOND_FACTOR].get("next")
    complete_sign_in(user, factor)
    session[AUTHENTICATED_AT] = utcnow().timestamp()
    if factor == "recovery_code":
        # After the sign-in: it starts a fresh session, which would drop the message.
        flash(f"You signed in with a recovery code; {mfa.recovery_codes_left(db.session, user)}"
              " left. If your authenticator app is lost, set up a new one here now.", "info")
        next_path = url_for("auth.security")
    going_to = destination(user, next_path)
    response = make_response(page(going_to)) if page is not None else redirect(going_to)
    throttle.remember_device(response, user.email)
    return response


def _qr(uri: str) -> Markup:
    svg = segno.make(uri, error="m").svg_inline(scale=5, dark="#000000", light="#ffffff",
                                                title="QR code for your authenticator app")
    return Markup(svg)


def _new_secret() -> str:
    """The new authenticator's secret this session shows, made at its first showing."""
    sealed = session.get(NEW_SECRET)
    secret = mfa.unseal(current_app.config, sealed) if isinstance(sealed, str) else None
    if secret is None:
        secret = mfa.new_secret()
        session[NEW_SECRET] = mfa.seal(current_app.config, secret)
    return secret


def _enrolment_page(user: User, form: EnrolAuthenticatorForm, action: str,
                    status: int = 200) -> tuple[str, int]:
    secret = _new_secret()
    return render_template("auth/enrol_authenticator.html", form=form, action=action,
                           qr=_qr(mfa.provisioning_uri(user, secret)),
                           secret=mfa.grouped(secret, " "),
                           replacing=mfa.is_enrolled(user)), status


def _codes_page(codes: list[str], continue_to: str) -> str:
    return render_template("auth/recovery_codes.html", codes=codes, continue_to=continue_to)


# --- signing in ------------------------------------------------------------------------------

def awaiting_second_step(enrolled: bool) -> User | Response:
    """The account whose password was right and whose second step this page is (the code page
    for an ``enrolled`` account, the authenticator's set-up otherwise); else where to go: home
    when signed in already, the sign-in page when nothing awaits, the other page of the two."""
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    user = awaiting_user()
    if user is None:
        flash(START_AGAIN, "info")
        return redirect(url_for("auth.login"))
    if mfa.is_enrolled(user) != enrolled:
        return redirect(url_for("auth.second_factor" if not enrolled else
                                "auth.enrol_at_sign_in"))
    return user


@bp.route("/login/code", methods=["GET", "POST"])
@limiter.limit(sign_in_limit, methods=["POST"])
@limiter.limit(code_limit, key_func=second_factor_key, methods=["POST"],
               deduct_when=throttle.is_failed_sign_in)
def second_factor() -> Response | str | tuple[str, int]:
    user = awaiting_second_step(enrolled=True)
    if isinstance(user, Response):
        return user
    form = SecondFactorForm()
    has_passkeys = bool(passkeys.passkeys_of(db.session, user))
    if form.validate_on_submit():
        factor = mfa.check_second_factor(db.session, current_actor(), user, current_app.config,
                                         form.code.data)
        if factor is None:
            keep_writes_despite_refusal()  # the failure stays in the audit trail
            form.code.errors.append(WRONG_CODE)
            return render_template("auth/second_factor.html", form=form,
                                   has_passkeys=has_passkeys), 401
        return signed_in_with_second_factor(user, factor)
    return render_template("auth/second_factor.html", form=form, has_passkeys=has_passkeys)


@bp.route("/login/authenticator", methods=["GET", "POST"])
@limiter.limit(sign_in_limit, methods=["POST"])
@limiter.limit(code_limit, key_func=second_factor_key, methods=["POST"],
               deduct_when=throttle.is_failed_sign_in)
def enrol_at_sign_in() -> Response | str | tuple[str, int]:
    """The first sign-in of staff: set up the authenticator app, then signed in."""
    user = awaiting_second_step(enrolled=False)
    if isinstance(user, Response):
        return user
    form = EnrolAuthenticatorForm()
    action = url_for("auth.enrol_at_sign_in")
    if form.validate_on_submit():
        codes = mfa.enrol(db.session, current_actor(), user, current_app.config, _new_secret(),
                          form.code.data)
        if codes is None:
            keep_writes_despite_refusal()
            form.code.errors.append(WRONG_CODE)
            return _enrolment_page(user, form, action, 401)
        return signed_in_with_second_factor(
            user, "enrolment", lambda going_to: _codes_page(codes, going_to))
    return _enrolment_page(user, form, action)


# --- one's own factors -----------------------------------------------------------------------

def fresh_authentication_required(view: View) -> View:
    """Changing factors needs the password or a code given within ``FRESH_FOR``."""
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        at = session.get(AUTHENTICATED_AT)
        if isinstance(at, (int, float)) and utcnow().timestamp() - at <= \
                FRESH_FOR.total_seconds():
            return view(*args, **kwargs)
        # Back to this page once confirmed; after a form, to the page that sent it.
        back = request.path if request.method == "GET" else _path_of(request.referrer)
        return redirect(url_for("auth.confirm_identity", next=safe_next_path(back)))
    return wrapped  # type: ignore[return-value]


def _path_of(url: str | None) -> str | None:
    """The path of a URL of this site (a Referer), for a redirect back to it."""
    if not url:
        return None
    root = request.host_url
    return "/" + url[len(root):] if url.startswith(root) else None


@bp.get("/account/security")
@login_required
def security() -> str:
    return render_template("auth/security.html", enrolled=mfa.is_enrolled(current_user),
                           codes_left=mfa.recovery_codes_left(db.session, current_user),
                           passkeys=passkeys.passkeys_of(db.session, current_user),
                           name_length=passkeys.MAX_NAME_LENGTH)


@bp.route("/account/security/confirm", methods=["GET", "POST"])
@login_required
@limiter.limit(sign_in_limit, methods=["POST"])
@limiter.limit(code_limit, key_func=second_factor_key, methods=["POST"],
               deduct_when=throttle.is_failed_sign_in)
def confirm_identity() -> Response | str | tuple[str, int]:
    """Re-authentication before a change of factors: the password, or a fresh code."""
    form = ConfirmIdentityForm()
    if form.validate_on_submit():
        user = current_user._get_current_object()
        given = form.secret.data
        if given.strip().isdigit() and mfa.is_enrolled(user):
            confirmed = mfa.check_second_factor(db.session, current_actor(), user,
                                                current_app.config, given) == "totp"
        else:
            confirmed = authenticate(db.session, user.email, given) is not None
            if not confirmed:
                mfa.record_failure(db.session, current_actor(), user, "password")
        if not confirmed:
            keep_writes_despite_refusal()
            form.secret.errors.append("That is not your password or your app's current code.")
            return render_template("auth/confirm_identity.html", form=form), 401
        session[AUTHENTICATED_AT] = utcnow().timestamp()
        return redirect(safe_next_path(request.args.get("next")) or url_for("auth.security"))
    return render_template("auth/confirm_identity.html", form=form)


@bp.route("/account/security/authenticator", methods=["GET", "POST"])
@login_required
@fresh_authentication_required
@limiter.limit(code_limit, key_func=second_factor_key, methods=["POST"],
               deduct_when=throttle.is_failed_sign_in)
def replace_authenticator() -> str | tuple[str, int]:
    """Set up a (new) authenticator app: it replaces the old one, with new recovery codes."""
    user = current_user._get_current_object()
    form = EnrolAuthenticatorForm()
    action = url_for("auth.replace_authenticator")
    if form.validate_on_submit():
        codes = mfa.enrol(db.session, current_actor(), user, current_app.config, _new_secret(),
                          form.code.data)
        if codes is None:
            keep_writes_despite_refusal()
            form.code.errors.append(WRONG_CODE)
            return _enrolment_page(user, form, action, 401)
        session.pop(NEW_SECRET)
        return _codes_page(codes, url_for("auth.security"))
    return _enrolment_page(user, form, action)


@bp.post("/account/security/recovery-codes")
@login_required
@fresh_authentication_required
def new_recovery_codes() -> Response | str:
    """A new set of recovery codes; the old set stops working."""
    user = current_user._get_current_object()
    if not mfa.is_enrolled(user):
        flash("Set up an authenticator app first: recovery codes come with it.", "info")
        return redirect(url_for("auth.security"))
    codes = mfa.issue_recovery_codes(db.session, current_actor(), user, current_app.config)
    return _codes_page(codes, url_for("auth.security"))


# --- an admin and colleagues' factors --------------------------------------------------------

@bp.get("/account/staff-factors")
@admin_required
def staff_factors() -> str:
    staff = clinic_staff(db.session, current_user.clinic_id, active_only=True)
    return render_template("auth/staff_factors.html", staff=staff, form=ResetFactorsForm(),
                           is_enrolled=mfa.is_enrolled)


@bp.post("/account/staff-factors/reset")
@admin_required
@fresh_authentication_required
def reset_staff_factors() -> Response:
    form = ResetFactorsForm()
    if not form.validate_on_submit():
        abort(404)
    colleague = mfa.clinic_colleague(db.session, current_user.clinic_id, form.user_id.data)
    if colleague is None:
        abort(404)
    if colleague.id == current_user.id:
        flash("To change your own factors, use your security page.", "info")
        return redirect(url_for("auth.staff_factors"))
    mfa.reset_factors(db.session, current_actor(), colleague)
    flash(f"{colleague.email}'s authenticator, recovery codes and passkeys are reset: they set "
          "up a new authenticator at their next sign-in. You and they are told by email.",
          "info")
    return redirect(url_for("auth.staff_factors"))
