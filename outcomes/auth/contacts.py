"""A patient's new contact address, confirmed by the link sent to it before it is used (issue 12
item 5; services/contact_changes.py).

The link is ``/confirm-contact#<token>``: browsers never send the fragment, so the token
reaches no log. Its page's script (link_token.js) posts the token to the confirming route,
which takes it only from the patient signed in (a link that reached the wrong person's
mailbox or phone cannot change anyone's details). A visitor not signed in is asked to sign
in; the script keeps the token in the tab meanwhile and posts it on the way back. A used,
replaced, cancelled, expired, unknown or someone else's link gets one page, which never says
which.
"""
from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from ..extensions import db, limiter
from ..services.contact_changes import KIND_WORDS, LIFETIME, confirm
from ..web import current_actor
from .access import own_patient, patient_required
from .forms import ConfirmContactForm
from .views import bp, sign_in_limit

#: The link's lifetime as its pages say it.
LIFETIME_WORDS = f"{int(LIFETIME.total_seconds() // 3600)} hours"


@bp.get("/confirm-contact")
def confirm_contact() -> str:
    """The link's page: open to anyone, since its token is in the fragment, which only the
    page's script reads; what it holds is used only once the patient is signed in."""
    signed_in = current_user.is_authenticated and current_user.role == "patient"
    return render_template("auth/contact_confirm.html", signed_in=signed_in,
                           form=ConfirmContactForm(formdata=None))


@bp.post("/confirm-contact")
@limiter.limit(sign_in_limit)
@patient_required
def confirm_contact_change() -> Response | tuple[str, int]:
    form = ConfirmContactForm()
    if not form.validate():
        return render_template("auth/contact_confirm.html", signed_in=True, form=form), 422
    patient = own_patient()
    change = confirm(db.session, current_actor(), patient, form.token.data.strip())
    if change is None:
        return render_template("auth/contact_invalid.html", lifetime=LIFETIME_WORDS), 404
    words = KIND_WORDS[change.kind]
    note = (" You still sign in with your sign-in email, which has not changed."
            if change.kind == "email" and patient.user is not None
            and patient.user.email != change.value else "")
    flash(f"Your new {words} is confirmed: reminders go to it from now on.{note}", "info")
    return redirect(url_for("patient.settings", _anchor="contact"), 303)
