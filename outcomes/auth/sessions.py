"""A signed-in session: its row in the database (services.user_sessions), begun at sign-in and
checked on every request, and how long it lasts: a sliding idle timeout (staff sooner than
patients) and an absolute cap from sign-in, both checked here on every request.

The cookie holds the session's secret, whose row a request must find open: a session ended
anywhere (signed out, from the owner's sessions page, by an admin) is refused at once by
every worker and host. The times live in the signed session cookie, so nobody can move them,
and the check is the server's: an old copy of the cookie is refused like the original. The
cookie itself lasts the absolute cap, longer than the idle timeout, so a form sent after an
idle timeout still says whose session it was, and a questionnaire's answers can be held for
that user.
"""
from __future__ import annotations

import datetime as dt

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, logout_user
from werkzeug.wrappers import Response

import instruments

from ..extensions import db
from ..forms import QuestionnaireForm, questionnaire_form
from ..models import User, UserSession, utcnow
from ..services import user_sessions
from ..services.assessments import raise_unsaved_risk_alerts
from ..services.audit import Actor
from ..services.records import offered_instruments
from ..services.held_answers import hold_answers
from .forms import LoginForm

STARTED = "_started"
SEEN = "_seen"
SIGNED_OUT = "For your privacy you were signed out after a time without activity."


def begin(user: User) -> None:
    """Begin a session for ``user``, just signed in: its row, its secret in the cookie, and
    its clocks."""
    secret = user_sessions.begin_session(db.session, user, request.user_agent.string,
                                         request.remote_addr)
    now = utcnow().timestamp()
    session.permanent = True
    session[user_sessions.COOKIE_KEY] = secret
    session[STARTED] = now
    session[SEEN] = now


def this_session() -> UserSession | None:
    """The open session of this request's signed-in user (found by the user loader)."""
    return g.get("user_session") if current_user.is_authenticated else None


def end(reason: str = "signed_out") -> None:
    """End this request's session, if one is signed in: its row, and the cookie's hold."""
    user_session = this_session()
    if user_session is not None:
        user_sessions.end_session(user_session, reason)
    logout_user()
    session.clear()


def session_cap(app: Flask) -> dt.timedelta:
    return dt.timedelta(hours=app.config["SESSION_MAX_HOURS"])


def idle_limit(app: Flask, user: User) -> dt.timedelta:
    """How long a session of this user may go without a request: the clinic's setting for
    their role, else the server's."""
    if user.role == "patient":
        minutes = user.clinic.patient_idle_minutes or app.config["PATIENT_IDLE_MINUTES"]
    else:
        minutes = user.clinic.staff_idle_minutes or app.config["STAFF_IDLE_MINUTES"]
    return dt.timedelta(minutes=minutes)


def has_ended(app: Flask, user: User, now: dt.datetime) -> bool:
    """Whether the session in the cookie is past its idle timeout or its absolute cap."""
    started, seen = session.get(STARTED), session.get(SEEN)
    if not isinstance(started, (int, float)) or not isinstance(seen, (int, float)):
        return True  # a session from before these clocks, or one not begun here
    stamp = now.timestamp()
    return (stamp - seen > idle_limit(app, user).total_seconds()
            or stamp - started > session_cap(app).total_seconds())


def install(bp: Blueprint) -> None:
    """Check the session's clocks on every request of the app ``bp`` is registered on.

    This runs after the CSRF check, which the ended session still passes (its cookie is
    intact), so a form sent after the session ended is known to come from that session's own
    page. A questionnaire's answers are then held for the patient, any risk they disclose
    alerts the clinic at once, and the patient is sent to sign in again.
    """
    bp.record_once(lambda state: state.app.config.update(
        PERMANENT_SESSION_LIFETIME=session_cap(state.app)))
    bp.before_app_request(end_or_extend_session)


def end_or_extend_session() -> Response | str | None:
    """End the session if its time is up (answering a form it sent), else note its activity."""
    if "_user_id" not in session:
        return None
    if not current_user.is_authenticated:  # ended elsewhere, or the account deactivated
        session.clear()
        return None
    now = utcnow()
    user = current_user._get_current_object()
    user_session = g.user_session
    timed_out = user_session.ended_at is not None  # the loader finds no other ended session
    if not timed_out and not has_ended(current_app, user, now):
        session[SEEN] = now.timestamp()
        user_sessions.note_activity(user_session, now)
        return None
    # The row ends too when it agrees: an old copy of the cookie, whose own clock has run out
    # while the session went on elsewhere, is refused without ending the session.
    if not timed_out and user_sessions.has_lapsed(user_session, idle_limit(current_app, user),
                                                  session_cap(current_app), now):
        user_sessions.end_session(user_session, user_sessions.TIMED_OUT)
    logout_user()
    session.clear()
    form = _sent_questionnaire(user)
    if form is not None:
        return _hold(user, form)
    if request.method == "POST":
        flash(SIGNED_OUT + " Nothing was saved: sign in and send the form again.", "info")
        return redirect(url_for("auth.login"))
    return None  # the page's own sign-in requirement answers



def _sent_questionnaire(user: User) -> QuestionnaireForm | None:
    """The questionnaire this request sends, when it is a patient's own, checked; else None."""
    if (request.method != "POST" or request.endpoint != "patient.questionnaire"
            or user.patient is None):
        return None
    key = (request.view_args or {}).get("key", "")
    # Only a questionnaire the patient's plan offers, as the form's own page requires.
    if key not in offered_instruments(db.session, user.patient.id):
        return None
    instrument = instruments.get(key)
    form = questionnaire_form(instrument)
    form.validate()
    if not form.submission_key.data or len(form.submission_key.data) > 64:
        return None
    return form


def _hold(user: User, form: QuestionnaireForm) -> Response | str:
    patient = user.patient
    key = form.instrument.key
    answers = form.valid_answers()
    hold_answers(db.session, user, key, answers, form.submission_key.data,
                 dt.timedelta(minutes=current_app.config["HELD_ANSWERS_MINUTES"]))
    flash(SIGNED_OUT + " Your answers are kept for a while: sign in and they will be back on "
          "the form, ready to send.", "info")
    # Risk the patient has disclosed is never lost, even if they do not sign in again.
    actor = Actor(user=user, ip_address=request.remote_addr, request_id=g.get("request_id"))
    risk = raise_unsaved_risk_alerts(db.session, actor, patient, key, form.submission_key.data,
                                     answers)
    if risk.crisis:
        # The crisis resources go with the sign-in form, on this very page.
        return render_template("auth/login.html", form=LoginForm(formdata=None), crisis=True,
                               clinic=patient.clinic)
    return redirect(url_for("auth.login"))
