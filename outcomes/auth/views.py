"""Signing in and out, and accepting an invitation."""
from __future__ import annotations

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.wrappers import Response

from ..extensions import db, limiter
from ..services import audit
from ..services.accounts import authenticate, end_all_sessions
from ..services.enrolment import EnrolmentError, accept_invitation, usable_invitation
from ..web import current_actor
from .access import safe_next_path
from .forms import AcceptInvitationForm, LoginForm

bp = Blueprint("auth", __name__)

LOGIN_FAILED = "The email or password is not right. Check them and try again."


def home_for(user) -> str:
    return url_for("patient.home") if user.role == "patient" else url_for("clinician.patients")


@bp.get("/")
def index() -> Response:
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    return redirect(url_for("auth.login"))


def sign_in_limit() -> str:
    return current_app.config["SIGN_IN_RATE_LIMIT"]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(sign_in_limit, methods=["POST"])
def login() -> Response | str:
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    form = LoginForm()
    if form.validate_on_submit():
        user = authenticate(db.session, form.email.data, form.password.data)
        if user is None:
            audit.record(db.session, current_actor(), "auth.login_failed")
            db.session.commit()  # the failed attempt is kept even though the page says 401
            flash(LOGIN_FAILED, "error")
            return render_template("auth/login.html", form=form), 401
        session.clear()
        login_user(user)
        audit.record(db.session, current_actor(), "auth.login", object_type="user",
                     object_id=user.id)
        return redirect(safe_next_path(request.args.get("next")) or home_for(user))
    return render_template("auth/login.html", form=form)


@bp.post("/logout")
@login_required
def logout() -> Response:
    audit.record(db.session, current_actor(), "auth.logout", object_type="user",
                 object_id=current_user.id)
    end_all_sessions(current_user)
    logout_user()
    session.clear()
    flash("You have signed out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/invite/<token>", methods=["GET", "POST"])
@limiter.limit(sign_in_limit, methods=["POST"])
def accept(token: str) -> Response | str:
    invitation = usable_invitation(db.session, token)
    if invitation is None:
        return render_template("auth/invitation_invalid.html"), 404
    form = AcceptInvitationForm()
    if request.method == "GET" and invitation.patient.contact_email:
        form.email.data = invitation.patient.contact_email
    if form.validate_on_submit():
        if current_user.is_authenticated:  # someone else's session on this device ends here
            logout_user()
            session.clear()
        try:
            user = accept_invitation(db.session, current_actor(), token, form.email.data,
                                     form.password.data)
        except EnrolmentError as error:
            form.email.errors.append(str(error))
        else:
            login_user(user)
            flash("Your account is ready.", "info")
            return redirect(url_for("patient.home"))
    if form.errors and request.method == "POST":
        return render_template("auth/accept.html", form=form, clinic=invitation.patient.clinic), 422
    return render_template("auth/accept.html", form=form, clinic=invitation.patient.clinic)
