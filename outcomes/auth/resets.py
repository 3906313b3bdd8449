"""Password resets (issue 12, docs/accounts-and-sessions.md): "Forgot your password?", the
reset link's pages, and the link a clinician issues from a patient's page.

The link is ``/reset#<token>``: browsers never send the fragment, so the token reaches no
access log, proxy log or Referer. Its page's script posts the token (link_token.js), which only
checks it; the new password, posted with it, uses it. A used, revoked, expired or unknown
link gets one page, which never says which, with a way to ask for a new one.

After the reset the person signs in with the new password, rather than being signed in by
the link: a link that came by email is not a second factor, so only the sign-in page (with
its limits and, for staff, their second step) opens a session.
"""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response

from ..extensions import db, limiter
from ..services.password_resets import (
    EMAILED_LIFETIME,
    ResetError,
    issue_clinic_reset,
    redeem_reset,
    request_reset,
    usable_reset,
)
from ..web import current_actor
from . import sessions, throttle
from .access import clinic_patient_or_404, staff_required
from .forms import ForgotPasswordForm, NewPasswordForm, OpenPasswordResetForm
from .one_time_links import one_time_link_page
from .views import bp, sign_in_limit

#: Requests for a reset link per address (whether or not an account has it), from any
#: client: local policy, enough for a person who mistyped or lost the first message, too few
#: to flood anyone's mailbox. The per-client limit is sign-in's (SIGN_IN_RATE_LIMIT).
RESET_REQUESTS_PER_ADDRESS = "3 per hour; 10 per day"
PASSWORD_CHANGED = ("Your password is changed and every session of your account has been "
                    "signed out. Sign in with your new password.")


@bp.route("/forgot-password", methods=["GET", "POST"])
@limiter.limit(sign_in_limit, methods=["POST"])
@limiter.limit(RESET_REQUESTS_PER_ADDRESS, key_func=throttle.account_key, methods=["POST"])
def forgot_password() -> str | tuple[str, int]:
    form = ForgotPasswordForm()
    if not form.validate_on_submit():
        status = 422 if form.errors and request.method == "POST" else 200
        return render_template("auth/forgot_password.html", form=form), status
    # The same page whatever the address: it never tells whether an account has it. The work
    # differs by a lookup and an insert; the message leaves later, from the worker.
    request_reset(db.session, current_actor(), form.email.data)
    return render_template("auth/reset_requested.html",
                           lifetime_minutes=int(EMAILED_LIFETIME.total_seconds() // 60))


@bp.route("/reset", methods=["GET", "POST"])
@limiter.limit(sign_in_limit, methods=["POST"])
def password_reset() -> str | tuple[str, int]:
    form = OpenPasswordResetForm()
    if not form.validate_on_submit():
        status = 422 if form.errors and request.method == "POST" else 200
        return render_template("auth/reset.html", form=form), status
    token = form.token.data.strip()
    if usable_reset(db.session, token) is None:
        return reset_invalid()
    return render_template("auth/new_password.html",
                           form=NewPasswordForm(formdata=None, token=token))


@bp.post("/reset/new-password")
@limiter.limit(sign_in_limit)
@limiter.limit(throttle.LINK_PASSWORD_LIMIT, key_func=throttle.link_key)
def choose_new_password() -> Response | tuple[str, int]:
    form = NewPasswordForm()
    token = (form.token.data or "").strip()
    if usable_reset(db.session, token) is None:
        return reset_invalid()
    if form.validate_on_submit():
        try:
            user = redeem_reset(db.session, current_actor(), token, form.password.data)
        except ResetError as error:
            form.password.errors.append(str(error))
        else:
            if user is None:  # used by a request sent at the same moment
                return reset_invalid()
            # Whoever is signed in on this device is signed out, the row ended too (the
            # account's own sessions ended with the reset; another's would be left open).
            sessions.end()
            flash(PASSWORD_CHANGED, "info")
            response = redirect(url_for("auth.login"), 303)
            throttle.remember_device(response, user.email)
            return response
    return render_template("auth/new_password.html", form=form), 422


def reset_invalid() -> tuple[str, int]:
    """The one answer to a reset link that does not work: used, replaced, expired or never
    issued (a 404, like an invitation that no longer works)."""
    return render_template("auth/reset_invalid.html",
                           lifetime_minutes=int(EMAILED_LIFETIME.total_seconds() // 60)), 404


@bp.post("/clinic/patients/<id:patient_id>/password-reset")
@staff_required
def issue_password_reset(patient_id: int) -> Response | str | tuple[str, int]:
    """A clinician issues a patient a reset link and QR code (for a patient without email,
    or who prefers it); it stops any earlier link."""
    patient = clinic_patient_or_404(patient_id)
    if not FlaskForm().validate_on_submit():  # the button's CSRF token, nothing else
        abort(400)
    try:
        issued = issue_clinic_reset(db.session, current_actor(), patient)
    except ResetError as error:
        flash(str(error), "error")
        return redirect(url_for("clinician.patient", patient_id=patient.id), 303)
    return one_time_link_page(
        patient, "auth.password_reset", issued.token, issued.expires_at,
        title="Password reset",
        explanation="With this link the patient chooses a new password; every session of "
                    "their account ends when it is used.")
