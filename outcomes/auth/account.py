"""A signed-in person's own account, patients and staff alike (issue 12 items 3 and 5): their
sessions (the list, ending one, signing out everywhere else or everywhere) and their password.
The work is services.user_sessions' and services.password_resets'."""
from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import IntegerField, PasswordField
from wtforms.validators import DataRequired, InputRequired, Length
from wtforms.widgets import HiddenInput

from ..extensions import db, limiter
from ..models import UserSession, utcnow
from ..services import user_sessions
from ..services.accounts import MAX_PASSWORD_LENGTH
from ..services.password_resets import ResetError, change_password as change_own_password
from ..web import current_actor, keep_writes_despite_refusal
from . import sessions, throttle
from .forms import NewPasswordForm
from .views import bp, sign_in_limit

WRONG_PASSWORD = "That is not your current password. Check it and try again."


class EndSessionForm(FlaskForm):
    """One of the person's other sessions, to end, named by its id (the view loads it from
    their own sessions, or answers 404)."""

    session_id = IntegerField(widget=HiddenInput(), validators=[InputRequired()])


class ChangePasswordForm(NewPasswordForm):
    """A new password (the reset's fields and rules), given with the current one."""

    token = None
    current_password = PasswordField(
        "Your current password",
        validators=[DataRequired("Enter your current password."),
                    Length(max=MAX_PASSWORD_LENGTH)])


@bp.get("/account/sessions", endpoint="sessions")
@login_required
def sessions_page() -> str:
    return _sessions_page()


@bp.post("/account/sessions/end")
@login_required
def end_session() -> Response | tuple[str, int]:
    form = EndSessionForm()
    if not form.validate_on_submit():
        return _sessions_page("The form was incomplete. Reload the page and try again; "
                              "nothing was changed."), 422
    target = user_sessions.own_session(db.session, current_user, form.session_id.data)
    if target is None:
        abort(404)
    ended = user_sessions.end_own_session(db.session, current_actor(), target)
    if target.id == _this_session().id:  # this device's own: the same as signing out
        sessions.end()
        flash("You have signed out.", "info")
        return redirect(url_for("auth.login"), 303)
    flash(f"The session on {target.device} has ended." if ended
          else "That session had ended already.", "info")
    return redirect(url_for("auth.sessions"), 303)


@bp.post("/account/sessions/end-others")
@login_required
def end_other_sessions() -> Response:
    ended = user_sessions.end_own_sessions(db.session, current_actor(), keep=_this_session())
    flash("You are signed out everywhere else." if ended
          else "You had no other sessions.", "info")
    return redirect(url_for("auth.sessions"), 303)


@bp.post("/account/sessions/end-all")
@login_required
def sign_out_everywhere() -> Response:
    user_sessions.end_own_sessions(db.session, current_actor(), keep=None)
    sessions.end()
    flash("You have signed out everywhere, on this device too.", "info")
    return redirect(url_for("auth.login"), 303)


def password_change_key() -> str:
    """The per-account throttle's key of a password change (wrong current passwords)."""
    return f"password-change:{getattr(current_user, 'id', 'none')}"


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
@limiter.limit(sign_in_limit, methods=["POST"])
@limiter.limit(throttle.account_limit, key_func=password_change_key,
               methods=["POST"], deduct_when=throttle.is_failed_sign_in)
def change_password() -> Response | str | tuple[str, int]:
    form = ChangePasswordForm()
    if not form.validate_on_submit():
        status = 422 if form.errors else 200
        return render_template("auth/account_password.html", form=form), status
    try:
        changed = change_own_password(db.session, current_actor(), form.current_password.data,
                                      form.password.data, keep=_this_session())
    except ResetError as error:
        form.password.errors.append(str(error))
        return render_template("auth/account_password.html", form=form), 422
    if not changed:
        # A wrong current password counts against the account, as at sign-in (401), and the
        # attempt stays in the audit trail.
        keep_writes_despite_refusal()
        form.current_password.errors.append(WRONG_PASSWORD)
        return render_template("auth/account_password.html", form=form), 401
    flash("Your password is changed. Your other sessions have ended; we have emailed you to "
          "say so.", "info")
    return redirect(url_for("auth.sessions"), 303)


def _this_session() -> UserSession:
    user_session = sessions.this_session()
    assert user_session is not None  # login_required: the loader found it open
    return user_session


def _sessions_page(problem: str | None = None) -> str:
    active = user_sessions.active_sessions(
        db.session, current_user, sessions.idle_limit(current_app, current_user),
        sessions.session_cap(current_app), utcnow())
    return render_template("auth/account_sessions.html", user_sessions=active,
                           this_session=_this_session(), form=EndSessionForm(formdata=None),
                           problem=problem)
