"""The clinic's notification settings (admins change them; clinicians see them) and, in
development, the outbox of every message the clinic's deliveries carried, on the clinician
blueprint."""
from __future__ import annotations

import dataclasses

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from ..auth.access import roles_required, staff_required
from ..channels import OUTBOX, configured_channels
from ..extensions import db
from ..services import audit
from ..services.clinic_settings import (
    DEFAULTS,
    NotificationSettings,
    SettingsRefused,
    settings_of,
    update_notification_settings,
)
from ..services.delivery_view import outbox_page
from ..web import current_actor
from .forms import NotificationSettingsForm
from .views import bp

#: What each setting is called in the message after a change.
SETTING_NAMES = {"reminder_limit": "reminders per questionnaire", "quiet_from": "quiet hours",
                 "quiet_until": "quiet hours", "on_call_email": "on-call email",
                 "escalation_minutes": "escalation time",
                 "message_sender_name": "sender name"}


@bp.get("/settings")
@staff_required
def settings() -> str:
    """The clinic's notification settings: a form for admins, the values for clinicians."""
    form = NotificationSettingsForm(data=dataclasses.asdict(settings_of(current_user.clinic)))
    return _settings_page(form)


@bp.post("/settings")
@roles_required("admin")
def update_settings() -> Response | tuple[str, int]:
    form = NotificationSettingsForm()
    if form.validate_on_submit():
        try:
            changed = update_notification_settings(
                db.session, current_actor(), current_user.clinic,
                NotificationSettings(**{name: form[name].data
                                        for name in SETTING_NAMES}))
        except SettingsRefused as refused:
            for name, message in refused.problems.items():
                form[name].errors = [*form[name].errors, message]
        else:
            names = list(dict.fromkeys(SETTING_NAMES[name] for name in changed))
            flash("Saved: " + ", ".join(names) + "." if names else "Nothing was changed.",
                  "info")
            return redirect(url_for("clinician.settings"), 303)
    if "csrf_token" in form.errors:
        form.form_errors.append("The form expired: send it again.")
    return _settings_page(form), 422


def _settings_page(form: NotificationSettingsForm) -> str:
    config = current_app.config
    return render_template(
        "clinician/settings.html", form=form, can_change=current_user.role == "admin",
        clinic=current_user.clinic, defaults=DEFAULTS,
        channels=[channel.label for channel in configured_channels(config)],
        outbox=OUTBOX.configured(config), sends=bool(config["PUBLIC_BASE_URL"]))


@bp.get("/outbox")
@staff_required
def outbox() -> str:
    """Development's outbox: the clinic's deliveries, newest first, with each message as it
    was (or would be) sent. Only where NOTIFICATION_OUTBOX is on; elsewhere there is no
    such page."""
    if not OUTBOX.configured(current_app.config):
        abort(404)
    base_url = current_app.config["PUBLIC_BASE_URL"] or request.host_url.rstrip("/")
    page = outbox_page(db.session, current_user.clinic, base_url,
                       request.args.get("page", 1, type=int))
    # Reminders link to their patients: which patients were reminded is read here.
    audit.record(db.session, current_actor(), "outbox.view", object_type="clinic",
                 object_id=current_user.clinic_id,
                 details={"page": page.page, "patients": sorted(
                     {entry.line.delivery.patient_id for entry in page.entries
                      if entry.line.delivery.patient_id is not None})})
    return render_template("clinician/outbox.html", page=page,
                           public_base_url=current_app.config["PUBLIC_BASE_URL"])
