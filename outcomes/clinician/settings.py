"""The clinic's settings (admins change them; clinicians see them) and, in development, the
outbox of every message the clinic's deliveries carried, on the clinician blueprint.

The settings page holds one form per group of settings (services.clinic_settings), each sent
to its own route and saved on its own, so that a mistake in one group keeps nothing of it and
touches no other."""
from __future__ import annotations

import dataclasses

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response

from .. import clock
from ..auth.access import roles_required, staff_required
from ..channels import OUTBOX, configured_channels
from ..config import staff_mfa_required
from ..extensions import db
from ..services import audit
from ..services import clinic_settings
from ..services.clinic_settings import (
    DEFAULTS,
    ClinicDetails,
    NotificationSettings,
    SettingsRefused,
    SignInPolicy,
    phone_example,
    settings_of,
)
from ..services.delivery_view import outbox_page
from ..web import current_actor
from .forms import ClinicDetailsForm, NotificationSettingsForm, SignInPolicyForm
from .views import bp

#: Each group's form, and the page's section that shows it (by its id).
FORMS = {ClinicDetails: (ClinicDetailsForm, "clinic"),
         NotificationSettings: (NotificationSettingsForm, "notifications"),
         SignInPolicy: (SignInPolicyForm, "sign-in")}

#: What each setting is called in the message after a change.
SETTING_NAMES = {"name": "clinic name", "crisis_phone": "crisis phone",
                 "timezone": "time zone", "alert_response_wording": "response-time wording",
                 "reminder_limit": "reminders per questionnaire", "quiet_from": "quiet hours",
                 "quiet_until": "quiet hours", "on_call_email": "on-call email",
                 "escalation_minutes": "escalation time",
                 "message_sender_name": "sender name",
                 "staff_idle_minutes": "staff idle timeout",
                 "patient_idle_minutes": "patients' idle timeout",
                 "staff_mfa_required": "staff second factor"}


@bp.get("/settings")
@staff_required
def settings() -> str:
    """The clinic's settings: forms for admins, the values for clinicians."""
    return _settings_page()


@bp.post("/settings")
@roles_required("admin")
def update_settings() -> Response | tuple[str, int]:
    """The notification settings (the route they had before the other groups)."""
    return _save(NotificationSettings)


@bp.post("/settings/clinic")
@roles_required("admin")
def update_clinic_details() -> Response | tuple[str, int]:
    return _save(ClinicDetails)


@bp.post("/settings/sign-in")
@roles_required("admin")
def update_sign_in_policy() -> Response | tuple[str, int]:
    return _save(SignInPolicy)


def _save(group: type) -> Response | tuple[str, int]:
    """Save the group of settings the request's form sends, or show the page again with what
    is wrong (a 422: nothing is stored)."""
    form_class, section = FORMS[group]
    form = form_class()
    if form.validate_on_submit():
        values = {field.name: form[field.name].data for field in dataclasses.fields(group)}
        try:
            changed = clinic_settings.update_settings(
                db.session, current_actor(), current_user.clinic, group(**values),
                current_app.config)
        except SettingsRefused as refused:
            for name, message in refused.problems.items():
                form[name].errors = [*form[name].errors, message]
        else:
            names = list(dict.fromkeys(SETTING_NAMES[name] for name in changed))
            flash("Saved: " + ", ".join(names) + "." if names else "Nothing was changed.",
                  "info")
            return redirect(url_for("clinician.settings", _anchor=section), 303)
    if "csrf_token" in form.errors:
        form.form_errors.append("The form expired: send it again.")
    return _settings_page(form), 422


def _settings_page(sent: FlaskForm | None = None) -> str:
    """The page, each group's form showing the clinic's settings but ``sent``, the form
    refused, which shows what was sent and what is wrong with it."""
    clinic, config = current_user.clinic, current_app.config
    forms = {}
    for group, (form_class, section) in FORMS.items():
        forms[section] = sent if isinstance(sent, form_class) else form_class(
            formdata=None, data=dataclasses.asdict(settings_of(clinic, group)))
    return render_template(
        "clinician/settings.html", forms=forms, can_change=current_user.role == "admin",
        clinic=clinic, defaults=DEFAULTS, zone_names=clock.zone_names(),
        phone_region=config["PHONE_REGION"],
        phone_example=phone_example(config["PHONE_REGION"]),
        idle_defaults={"staff": config["STAFF_IDLE_MINUTES"],
                       "patient": config["PATIENT_IDLE_MINUTES"]},
        server_requires_mfa=staff_mfa_required(config),
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
