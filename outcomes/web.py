"""What every request shares: its id, the one commit at its end, security headers, error pages,
and the actor that services record in the audit trail."""
from __future__ import annotations

import logging
import re
import traceback
import uuid
from typing import Any

from flask import (
    Flask,
    Response,
    abort,
    flash,
    g,
    has_request_context,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException, InternalServerError

from .database import RETRY_AFTER_SECONDS, UNAVAILABLE, abandon_transaction
from .extensions import db
from .services.audit import Actor

log = logging.getLogger(__name__)

# Characters no field may carry: NUL and other control characters (tab and line breaks are
# fine). PostgreSQL refuses NUL in text, and none of them belongs in a health record.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

# Scripts and styles only from this site; chart data travels as JSON, never inline script.
# plotly.js adds two <style> elements of its own: an empty one it fills through the CSSOM
# (which CSP does not govern), and its map library's fixed stylesheet (plotly.js 4.1.1).
# Allowing exactly those two by hash keeps every other inline style out. The browser tests
# fail on any CSP refusal, so a plotly.js upgrade that changes them is caught.
PLOTLY_STYLE_HASHES = ("'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",
                       "'sha256-ji27qzEtxXZW+7dun6UwjHXJ18e6WAin1VvNtkzIE/o='")
CONTENT_SECURITY_POLICY = (
    f"default-src 'self'; script-src 'self'; style-src 'self' {' '.join(PLOTLY_STYLE_HASHES)}; "
    "img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
#: The headers every response carries, pages and static files alike: the app's hook sets them
#: on pages, and register_static_files gives them to WhiteNoise, which answers /static/
#: before any hook of the app runs.
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # same-origin: a page's address goes to this site only, never to another (a link out of
    # the app says nothing about where the person came from; a token in a URL stays here),
    # while a POST from the app's own page carries the Referer and Origin that the CSRF check
    # over HTTPS needs (WTF_CSRF_SSL_STRICT; under no-referrer a browser sends no Referer and
    # `Origin: null` on a POST, so no origin check could tell a forged form from ours).
    "Referrer-Policy": "same-origin",
}
#: Only on responses served over HTTPS (RFC 6797 §7.2: browsers ignore it over HTTP); a year,
#: the minimum the browsers' preload lists ask for.
STRICT_TRANSPORT_SECURITY = "max-age=31536000; includeSubDomains"


def add_security_headers(headers: Any) -> None:
    """Give ``headers`` (Werkzeug's or wsgiref's) the shared security headers, keeping any
    that a view chose itself."""
    for name, value in SECURITY_HEADERS.items():
        headers.setdefault(name, value)


def current_actor() -> Actor:
    """The signed-in user (if any) and where the request came from, for the audit trail."""
    user = current_user if current_user.is_authenticated else None
    return Actor(user=user, ip_address=request.remote_addr, request_id=g.get("request_id"))


#: Set on ``g`` by keep_writes_despite_refusal; read by the commit at the request's end.
_KEEP_WRITES = "keep_writes_despite_refusal"


def keep_writes_despite_refusal() -> None:
    """Commit what this request wrote although its answer refuses it (a 4xx status).

    The request's end commits on success and rolls back on an error status; a view calls this
    for what must stand even so: a failed sign-in attempt in the audit trail (the page says
    401), the audited read of a page shown with its bad filters reset (400), an alert that a
    refused form's answers opened (422). They stand even if showing the page then fails (a
    500): one disclosure must never lose its alert to a page that could not be drawn. Only a
    database failure (503, or an error of the database in the view) keeps nothing."""
    setattr(g, _KEEP_WRITES, True)


def _commits(response: Response) -> bool:
    """Whether the request that answers ``response`` commits: the one decision, for all."""
    status = response.status_code
    return status < 400 or (status != 503 and g.get(_KEEP_WRITES, False))


def install_request_hooks(app: Flask) -> None:
    @app.before_request
    def assign_request_id() -> None:
        # Always our own: a client-chosen id could forge or collide in the audit trail.
        g.request_id = uuid.uuid4().hex

    @app.before_request
    def refuse_control_characters() -> None:
        values = [*request.args.values(), *request.form.values()]
        if any(_CONTROL_CHARACTERS.search(value) for value in values):
            abort(400, "The form contained characters that cannot be stored (such as control "
                       "characters). Remove them and try again. Nothing was saved.")

    @app.after_request
    def finish(response: Response) -> Response:
        # The headers first: if the database fails below, the error page that answers
        # instead passes through here again, and keeps them even if its rollback fails too.
        response.headers["X-Request-ID"] = g.get("request_id", "")
        add_security_headers(response.headers)
        # is_secure: TLS here, or a trusted proxy's X-Forwarded-Proto (ProxyFix).
        if request.is_secure:
            response.headers["Strict-Transport-Security"] = STRICT_TRANSPORT_SECURITY
        if not request.path.startswith("/static/"):
            # Health data must not linger in caches. A view may choose otherwise for a page
            # that holds none (a blank questionnaire, so the back button keeps its key).
            response.headers.setdefault("Cache-Control", "no-store")
        # One transaction per request: what the services wrote (including audit rows) is
        # committed together, or not at all. This is the only commit of a request.
        if _commits(response):
            db.session.commit()
        else:
            db.session.rollback()
        return response


def _error_type(error: BaseException) -> str:
    """An error's type, and the database driver's underneath it: never its message."""
    original = getattr(error, "orig", None)
    if original is None:
        return type(error).__name__
    return f"{type(error).__name__} ({type(original).__module__}.{type(original).__name__})"


class _TypeAndPlaceOnly(logging.Filter):
    """Flask itself logs an exception raised after the view (a failed commit in the
    after-request hook) with its message, and a database's message can quote the values of
    a row: keep the error's type and where it happened, as the app's own handlers do."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            request_id = g.get("request_id") if has_request_context() else None
            record.args = (record.getMessage(), _error_type(error), request_id,
                           "".join(traceback.format_tb(error.__traceback__)))
            record.msg = "%s: %s (request %s)\n%s"
            record.exc_info = record.exc_text = None
        return True


def install_error_handlers(app: Flask) -> None:
    app.logger.addFilter(_TypeAndPlaceOnly())

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError) -> Response | tuple[str, int]:
        if not current_user.is_authenticated and request.blueprint != "auth":
            # The form came from a signed-in page whose session is gone altogether (its
            # cookie too: an ended session whose cookie remains is answered, and a
            # questionnaire's answers held, in auth/sessions.py).
            flash("You were signed out, so the form could not be sent. Sign in and send it "
                  "again; nothing was saved.", "info")
            # A questionnaire's answers cannot be attributed without a session, so a
            # disclosure in them reaches nobody: the sign-in page then leads with the national
            # crisis lines. Said in the address, not the session: this browser keeps no cookie.
            help_now = "now" if request.endpoint == "patient.questionnaire" else None
            return redirect(url_for("auth.login", help=help_now))
        return render_template(
            "errors/error.html",
            title="This form has expired",
            message="The page was open too long or was sent twice. Go back, reload the page "
            "and try again. Nothing was saved.",
        ), 400

    def database_unavailable(error: Exception) -> tuple[str, int, dict[str, str]]:
        # An outage is not a fault of the app: a warning, naming only the error's type (a
        # database's message can quote the values of a row).
        log.warning("database unavailable: %s (request %s)", _error_type(error),
                    g.get("request_id"))
        abandon_transaction(db.session)
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        if request.endpoint == "patient.crisis_help":
            # Crisis lines must not depend on the database: the national ones, without the
            # clinic's own number (which lives in the database).
            return render_template("patient/help.html", clinic=None, hide_account=True), 200, {}
        return render_template(
            "errors/error.html",
            title="Please try again in a minute",
            message="Outcomes cannot reach its records just now. Nothing was saved. Please try "
            "again in a minute.",
        ), 503, headers

    for error_class in UNAVAILABLE:
        app.register_error_handler(error_class, database_unavailable)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[str, int] | tuple[str, int, dict[str, str]]:
        if (isinstance(error, InternalServerError)
                and isinstance(error.original_exception, UNAVAILABLE)):
            # Raised after the view (the commit in the after-request hook): Flask hands it
            # over wrapped.
            return database_unavailable(error.original_exception)
        messages = {
            400: ("This request could not be handled",
                  error.description if error.description != type(error).description
                  else "Something in the request was not as expected. Nothing was saved."),
            403: ("Not allowed", "You do not have access to this page."),
            404: ("Page not found", "There is nothing here. Check the address, or go back."),
            405: ("Not allowed", "This page cannot be used that way."),
            413: ("Too much data", "The form sent too much data. Nothing was saved."),
            429: ("Too many attempts", "Please wait a while and try again. Nothing was saved."),
        }
        title, message = messages.get(
            error.code or 500, (error.name, "The request could not be handled.")
        )
        return render_template("errors/error.html", title=title, message=message), error.code or 500

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception) -> tuple[str, int]:
        # The log gets the error's type and where it happened, never its message: database
        # errors quote the values of the row (health data) in theirs.
        log.error("unhandled %s (request %s)\n%s", type(error).__name__, g.get("request_id"),
                  "".join(traceback.format_tb(error.__traceback__)))
        if g.get(_KEEP_WRITES, False) and not isinstance(error, SQLAlchemyError):
            # What the view asked to keep (an alert its refused form opened) is committed at
            # the request's end all the same; the rest of the request wrote nothing else.
            outcome = "The page could not be shown."
        else:
            abandon_transaction(db.session)
            outcome = "The page could not be shown and nothing was changed."
        return render_template(
            "errors/error.html",
            title="Something went wrong",
            message=f"{outcome} Please try again; if it keeps happening, tell the clinic "
            f"(reference {g.get('request_id', '-')}).",
        ), 500
