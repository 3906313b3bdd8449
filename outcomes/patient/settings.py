"""The patient's own reminder settings, on the patient blueprint: reminders on or off, their
channels and mobile number, and notifications on this phone (web push: push.js subscribes,
the service worker shows what arrives)."""
from __future__ import annotations

from collections.abc import Callable

from flask import (
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    send_from_directory,
    url_for,
)
from werkzeug.wrappers import Response

from ..auth.access import own_patient, patient_required
from ..extensions import db
from ..services import audit
from ..services.patient_settings import (
    SMS,
    SettingsError,
    offered_channels,
    push_public_key,
    remove_push_subscription,
    save_push_subscription,
    update_reminder_settings,
)
from ..web import current_actor
from .forms import (
    REMINDERS_OFF,
    REMINDERS_ON,
    PushRemovalForm,
    PushSubscriptionForm,
    ReminderSettingsForm,
)
from .views import bp


@bp.route("/settings", methods=["GET", "POST"])
@patient_required
def settings() -> Response | tuple[str, int]:
    patient = own_patient()
    config = current_app.config
    offered = offered_channels(config)
    form = ReminderSettingsForm(offered)
    # The number is asked for only where texts are offered; elsewhere it is kept as stored.
    texts = any(channel.name == SMS for channel in offered)
    if not form.is_submitted():
        form.reminders.data = REMINDERS_ON if patient.reminders_enabled else REMINDERS_OFF
        form.channels.data = list(patient.reminder_channels)
        form.phone.data = patient.contact_phone or ""
        audit.record(db.session, current_actor(), "patient.view_settings", patient=patient,
                     object_type="patient", object_id=patient.id)
    elif form.validate():
        try:
            update_reminder_settings(db.session, current_actor(), patient, enabled=form.enabled,
                                     channels=form.channels.data or [],
                                     phone=(form.phone.data or "") if texts else None,
                                     config=config)
        except SettingsError as error:
            target = getattr(form, error.field, None) if error.field else None
            if target is not None:
                target.errors = [*target.errors, str(error)]
            else:
                form.form_errors.append(str(error))
        else:
            flash("Your reminder settings are saved." if form.enabled
                  else "Reminders are off. You can turn them on here at any time.", "info")
            return redirect(url_for("patient.settings"), 303)
    page = render_template(
        "patient/settings.html", form=form, patient=patient, offered=offered,
        texts=texts, push_key=push_public_key(config), subscribe_form=PushSubscriptionForm(),
        removal_form=PushRemovalForm())
    return page, 422 if form.is_submitted() else 200


def _answer(form: PushSubscriptionForm | PushRemovalForm,
            act: Callable[[], str]) -> tuple[Response, int]:
    """A push-subscription POST (push.js sends it) answered in JSON: the message to show, and
    on success a flash for the page push.js reloads."""
    if not form.validate_on_submit():
        return jsonify(error=next(iter(form.errors.values()))[0]), 400
    try:
        message = act()
    except SettingsError as error:
        return jsonify(error=str(error)), 400
    flash(message, "info")
    return jsonify(message=message), 200


@bp.post("/push-subscriptions")
@patient_required
def push_subscribe() -> tuple[Response, int]:
    form = PushSubscriptionForm()

    def subscribe() -> str:
        save_push_subscription(db.session, current_actor(), own_patient(),
                               form.subscription.data, current_app.config)
        return "Notifications are on for this phone."

    return _answer(form, subscribe)


@bp.post("/push-subscriptions/remove")
@patient_required
def push_unsubscribe() -> tuple[Response, int]:
    form = PushRemovalForm()

    def unsubscribe() -> str:
        remove_push_subscription(db.session, current_actor(), own_patient(),
                                 form.endpoint.data)
        return "Notifications are off for this phone."

    return _answer(form, unsubscribe)


@bp.get("/sw.js")
def service_worker() -> Response:
    """The service worker, served from /me/ so that its scope covers the patient's pages. Open
    to anyone: the browser fetches it to update it whether or not a session is open, and it
    holds nothing of anyone's."""
    response = send_from_directory(current_app.static_folder, "js/sw.js",
                                   mimetype="text/javascript", max_age=0)
    # Checked again at each visit, so a new version reaches phones at once.
    response.headers["Cache-Control"] = "no-cache"
    return response
