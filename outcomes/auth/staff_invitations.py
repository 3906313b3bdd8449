"""Accepting a staff invitation (services/staff.py): the link is ``/join#<token>``, and the
token after ``#`` never reaches the server's logs. The page's script (link_token.js) posts it; the
answer is the password form, or one page for a used, revoked, expired or made-up link."""
from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request
from werkzeug.wrappers import Response

from ..extensions import db, limiter
from ..models import StaffInvitation
from ..services.mfa import second_factor_required
from ..services.staff import (
    STAFF_INVITATION_LIFETIME,
    StaffAdminError,
    accept_staff_invitation,
    usable_staff_invitation,
)
from ..web import current_actor
from . import throttle
from .forms import NewPasswordForm, OpenInvitationForm
from .views import await_second_factor, bp, home_for, sign_in, sign_in_limit


@bp.route("/join", methods=["GET", "POST"])
@limiter.limit(sign_in_limit, methods=["POST"])
def open_staff_invitation() -> str | tuple[str, int]:
    form = OpenInvitationForm()
    if not form.validate_on_submit():
        status = 422 if form.errors and request.method == "POST" else 200
        return render_template("auth/invite.html", form=form,
                               action=request.path), status
    token = form.token.data.strip()
    invitation = usable_staff_invitation(db.session, token)
    if invitation is None:
        return staff_invitation_invalid()
    return _password_page(NewPasswordForm(formdata=None, token=token), invitation)


@bp.post("/join/accept")
@limiter.limit(sign_in_limit)
@limiter.limit(throttle.LINK_PASSWORD_LIMIT, key_func=throttle.link_key)
def accept_staff_invitation_link() -> Response | tuple[str, int]:
    form = NewPasswordForm()
    token = (form.token.data or "").strip()
    invitation = usable_staff_invitation(db.session, token)
    if invitation is None:
        return staff_invitation_invalid()
    if form.validate_on_submit():
        try:
            user = accept_staff_invitation(db.session, current_actor(), token,
                                           form.password.data)
        except StaffAdminError as error:
            if usable_staff_invitation(db.session, token) is None:  # used meanwhile
                return staff_invitation_invalid()
            form.form_errors.append(str(error))
        else:
            # Staff sign in with a second factor where it is required: the invitee sets up
            # their authenticator app now, as at any first sign-in (auth/mfa.py). Either way
            # whoever was signed in on this device is signed out (sign_in and
            # await_second_factor end this device's session).
            if second_factor_required(user, current_app.config):
                response = await_second_factor(user, None)
                flash("Your account is ready. Set up your authenticator app to finish "
                      "signing in.", "info")
            else:
                sign_in(user)
                flash("Your account is ready.", "info")
                response = redirect(home_for(user))
            throttle.remember_device(response, user.email)
            return response
    return _password_page(form, invitation), 422


def _password_page(form: NewPasswordForm, invitation: StaffInvitation) -> str:
    return render_template("auth/staff_accept.html", form=form, invitation=invitation,
                           clinic=invitation.clinic)


def staff_invitation_invalid() -> tuple[str, int]:
    """The answer to a staff invitation link that does not work (any more): a 404."""
    return render_template("auth/invitation_invalid.html",
                           valid_days=STAFF_INVITATION_LIFETIME.days), 404
