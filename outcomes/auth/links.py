"""A reminder's questionnaire link (docs/notifications.md): its page, and the session it opens,
which reaches that one questionnaire alone.

The link is ``/r#<token>``. Opening it changes nothing: mail scanners open links, and some run
their scripts. The page's script takes the token from the fragment into the form; the
patient's tap on its button posts it, and only that uses the link. A used, expired or unknown
link gets one page, which never says which.

The session a link opens is marked with the link's id. It may open and send that
questionnaire, see the result of what it sent, and the crisis help page; any other page ends
it and asks for the password (the sign-in page, which then leads on to that page).
"""
from __future__ import annotations

from flask import flash, redirect, render_template, request, session, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from ..extensions import db, limiter
from ..services.questionnaire_links import LINK_LIFETIME, link_scope, redeem_link
from ..web import current_actor
from . import sessions
from .forms import QuestionnaireLinkForm
from .views import bp, sign_in, sign_in_limit

#: The session key naming the link a session was opened by (absent in a password session).
OPENED_BY_LINK = "_questionnaire_link"
#: Pages a link's session reaches whatever it did: the link's own, crisis help, the files,
#: and the service worker (the browser fetches it by itself to update it while the patient
#: is on the questionnaire, which must not end their session).
ALWAYS_OPEN = {"auth.questionnaire_link", "patient.crisis_help", "static",
               "patient.service_worker"}
ASK_FOR_PASSWORD = "To see the rest of Outcomes, sign in with your password."


@bp.route("/r", methods=["GET", "POST"])
@limiter.limit(sign_in_limit, methods=["POST"])
def questionnaire_link() -> Response | str | tuple[str, int]:
    form = QuestionnaireLinkForm()
    if request.method == "GET":
        return render_template("auth/questionnaire_link.html", form=form)
    if not form.validate_on_submit():
        return link_invalid()
    redeemed = redeem_link(db.session, current_actor(), form.token.data.strip())
    if redeemed is None:
        return link_invalid()
    already_signed_in = (current_user.is_authenticated and current_user.id == redeemed.user.id
                         and OPENED_BY_LINK not in session)
    if not already_signed_in:
        sign_in(redeemed.user)
        session[OPENED_BY_LINK] = redeemed.link_id
    return redirect(url_for("patient.questionnaire", key=redeemed.instrument_key), 303)


def link_invalid() -> tuple[str, int]:
    """The one answer to a link that does not work: used, expired or never issued."""
    return render_template("auth/questionnaire_link_invalid.html",
                           lifetime_hours=int(LINK_LIFETIME.total_seconds() // 3600)), 404


@bp.before_app_request
def keep_to_the_linked_questionnaire() -> Response | None:
    """End a link's session when it asks for a page beyond its questionnaire, and ask for the
    password (runs after the session's clocks are checked: an ended session is gone)."""
    link_id = session.get(OPENED_BY_LINK)
    if link_id is None or not current_user.is_authenticated or _within_link(link_id):
        return None
    sessions.end()
    if request.endpoint == "auth.login":
        return None  # the sign-in page itself, now for a password session
    flash(ASK_FOR_PASSWORD, "info")
    return redirect(url_for("auth.login",
                            next=request.path if request.method == "GET" else None))


def _within_link(link_id: object) -> bool:
    """Whether this request stays within what the link's session may reach."""
    if request.endpoint in ALWAYS_OPEN:
        return True
    if request.endpoint not in ("patient.questionnaire", "patient.result"):
        return False
    patient = current_user.patient
    scope = link_scope(db.session, link_id) if isinstance(link_id, int) else None
    if scope is None or patient is None or scope.patient_id != patient.id:
        return False
    arguments = request.view_args or {}
    if request.endpoint == "patient.questionnaire":
        return arguments.get("key") == scope.instrument_key
    return arguments.get("assessment_id") in scope.sent_assessment_ids
