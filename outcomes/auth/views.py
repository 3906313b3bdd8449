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
from flask_login import current_user, login_required, login_user
from werkzeug.wrappers import Response

from ..extensions import db, limiter
from ..models import utcnow
from ..services import audit
from ..services.accounts import authenticate
from ..services.enrolment import EnrolmentError, accept_invitation, usable_invitation
from ..services.held_answers import forget_expired_answers, held_instrument
from ..services.mfa import is_enrolled, second_factor_required
from ..web import current_actor, keep_writes_despite_refusal
from . import sessions, throttle
from .access import safe_next_path
from .forms import AcceptInvitationForm, LoginForm, OpenInvitationForm

bp = Blueprint("auth", __name__)
sessions.install(bp)

LOGIN_FAILED = "The email or password is not right. Check them and try again."
#: The session key of a sign-in whose password was right and whose second factor is awaited:
#: the user's id and session token, when, and the page asked for. Nobody is signed in.
AWAITING_SECOND_FACTOR = "_awaiting_second_factor"


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
@limiter.limit(throttle.account_limit, key_func=throttle.account_key, methods=["POST"],
               deduct_when=throttle.is_failed_sign_in)
def login() -> Response | str | tuple[str, int]:
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    form = LoginForm()
    # A questionnaire sent with no session left (web.py's CSRF handler): whose it was is
    # unknown, so the page leads with the national crisis lines.
    help_now = request.args.get("help") == "now"
    if form.validate_on_submit():
        user = authenticate(db.session, form.email.data, form.password.data)
        if user is None:
            audit.record(db.session, current_actor(), "auth.login_failed")
            keep_writes_despite_refusal()  # the failed attempt is kept: the page says 401
            flash(LOGIN_FAILED, "error")
            return render_template("auth/login.html", form=form, help_now=help_now), 401
        if second_factor_required(user, current_app.config):
            return await_second_factor(user, request.args.get("next"))
        complete_sign_in(user)
        response = redirect(destination(user, request.args.get("next")))
        throttle.remember_device(response, user.email)
        return response
    return render_template("auth/login.html", form=form, help_now=help_now)


def sign_in(user) -> None:
    """A fresh session for ``user``, whatever this device held before (which ends)."""
    sessions.end()
    login_user(user)
    sessions.begin(user)


def complete_sign_in(user, second_factor: str | None = None) -> None:
    """Sign ``user`` in, audited with the second factor they gave, if any."""
    sign_in(user)
    audit.record(db.session, current_actor(), "auth.login", object_type="user",
                 object_id=user.id,
                 details={"second_factor": second_factor} if second_factor else None)


def destination(user, next_path: str | None) -> str:
    """Where a sign-in leads: held answers, the page asked for, or the person's home."""
    return _held_form(user) or safe_next_path(next_path) or home_for(user)


def await_second_factor(user, next_path: str | None) -> Response:
    """The password was right; nothing is signed in until the second factor is given
    (auth/mfa.py): the code page, or at the first sign-in the authenticator's enrolment.
    Whoever was signed in on this device is signed out first, their session's row ended."""
    sessions.end()
    session[AWAITING_SECOND_FACTOR] = {"user": user.id, "token": user.session_token,
                                       "at": utcnow().timestamp(),
                                       "next": safe_next_path(next_path)}
    return redirect(url_for("auth.second_factor" if is_enrolled(user)
                            else "auth.enrol_at_sign_in"))


def _held_form(user) -> str | None:
    """The questionnaire whose answers were held when the user's last session ended."""
    forget_expired_answers(db.session)
    key = held_instrument(db.session, user.id) if user.role == "patient" else None
    if key is None:
        return None
    flash("Your answers are back on the form. Check them and send it when you are ready.",
          "info")
    return url_for("patient.questionnaire", key=key)


@bp.post("/logout")
@login_required
def logout() -> Response:
    audit.record(db.session, current_actor(), "auth.logout", object_type="user",
                 object_id=current_user.id)
    sessions.end("signed_out")
    flash("You have signed out.", "info")
    return redirect(url_for("auth.login"))


# An invitation link is /invite#<token>: browsers never send a fragment, so the token reaches
# no access log, proxy log or Referer. The page's script posts it (link_token.js).
@bp.route("/invite", methods=["GET", "POST"])
@limiter.limit(sign_in_limit, methods=["POST"])
def open_invitation() -> Response | str | tuple[str, int]:
    form = OpenInvitationForm()
    if not form.validate_on_submit():
        status = 422 if form.errors and request.method == "POST" else 200
        return render_template("auth/invite.html", form=form), status
    invitation = usable_invitation(db.session, form.token.data.strip())
    if invitation is None:
        return invitation_invalid()
    accept_form = AcceptInvitationForm(formdata=None, token=form.token.data.strip(),
                                       email=invitation.patient.contact_email)
    return render_template("auth/accept.html", form=accept_form,
                           clinic=invitation.patient.clinic)


@bp.get("/invite/<path:anything>")
def old_invitation_link(anything: str) -> tuple[str, int]:
    """Links issued before tokens moved into the fragment put them in the path: what is in a
    path has been logged, so such a link is not honoured (the clinic issues a new one)."""
    return invitation_invalid()


def invitation_invalid() -> tuple[str, int]:
    """The answer to an invitation link that does not work (any more): a 404 like any other."""
    return render_template("auth/invitation_invalid.html",
                           valid_days=current_app.config["INVITATION_VALID_DAYS"]), 404


@bp.post("/invite/accept")
@limiter.limit(sign_in_limit)
@limiter.limit(throttle.LINK_PASSWORD_LIMIT, key_func=throttle.link_key)
def accept() -> Response | str | tuple[str, int]:
    form = AcceptInvitationForm()
    invitation = usable_invitation(db.session, (form.token.data or "").strip())
    if invitation is None:
        return invitation_invalid()
    if form.validate_on_submit():
        try:
            user = accept_invitation(db.session, current_actor(), form.token.data.strip(),
                                     form.email.data, form.password.data)
        except EnrolmentError as error:
            form.email.errors.append(str(error))
        else:
            sign_in(user)
            flash("Your account is ready.", "info")
            response = redirect(url_for("patient.home"))
            throttle.remember_device(response, user.email)
            return response
    return render_template("auth/accept.html", form=form, clinic=invitation.patient.clinic), 422
