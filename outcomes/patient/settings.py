"""The patient's own settings, on the patient blueprint: reminders on or off and their
channels, the contact details they go to (a new one used once confirmed by the link sent to
it: services/contact_changes.py; auth/contacts.py takes the link), and notifications on this
phone (web push: push.js subscribes, the service worker shows what arrives)."""
from __future__ import annotations

from collections.abc import Callable

from flask import (
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    send_from_directory,
    url_for,
)
from flask_login import current_user
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from ..auth.access import own_patient, patient_required
from ..auth.mfa import fresh_authentication_required
from ..extensions import db, limiter
from ..models import Patient
from ..services import audit, contact_changes
from ..services.contact_changes import KIND_WORDS, ContactChangeError
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
    ContactDetailsForm,
    PushRemovalForm,
    PushSubscriptionForm,
    ReminderSettingsForm,
    WaitingChangeForm,
)
from .views import bp

#: Messages with a confirmation link an account may cause (each to an address its owner
#: typed): local policy, enough for typing mistakes and a lost message, too few to flood
#: anyone's mailbox or phone from a stolen session.
CONTACT_MESSAGES_PER_ACCOUNT = "5 per hour; 20 per day"


def _account_key() -> str:
    return f"contact-messages:{current_user.id}"


#: One count for asking for a change and for resending its link.
contact_messages = limiter.shared_limit(CONTACT_MESSAGES_PER_ACCOUNT, scope="contact-messages",
                                        key_func=_account_key)


@bp.route("/settings", methods=["GET", "POST"])
@patient_required
def settings() -> Response | tuple[str, int]:
    patient = own_patient()
    config = current_app.config
    form = ReminderSettingsForm(offered_channels(config))
    if not form.is_submitted():
        form.reminders.data = REMINDERS_ON if patient.reminders_enabled else REMINDERS_OFF
        form.channels.data = list(patient.reminder_channels)
        audit.record(db.session, current_actor(), "patient.view_settings", patient=patient,
                     object_type="patient", object_id=patient.id)
    elif form.validate():
        try:
            update_reminder_settings(db.session, current_actor(), patient, enabled=form.enabled,
                                     channels=form.channels.data or [], config=config)
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
    page = _settings_page(patient, form, _contact_form(patient))
    return page, 422 if form.is_submitted() else 200


@bp.post("/settings/contact")
@patient_required
@fresh_authentication_required
@contact_messages
def change_contact() -> Response | tuple[str, int]:
    """New contact details: each new address gets a link, and is used once it is followed.
    Like a resend, it needs the password (or a code) given within minutes
    (``fresh_authentication_required``): a phone left unlocked does not move the reminders."""
    patient = own_patient()
    form = ContactDetailsForm()
    if form.validate():
        try:
            said = [_change_said(patient, kind, getattr(form, kind).data or "")
                    for kind in (contact_changes.EMAIL, contact_changes.PHONE)
                    if _asked(kind)]
        except ContactChangeError as error:
            getattr(form, error.field or "email").errors = [str(error)]
        else:
            for message in said:
                if message:
                    flash(message, "info")
            if not any(said):
                flash("Your contact details are as they were: nothing to change.", "info")
            return redirect(url_for("patient.settings", _anchor="contact"), 303)
    reminders = ReminderSettingsForm(offered_channels(current_app.config), formdata=None)
    reminders.reminders.data = REMINDERS_ON if patient.reminders_enabled else REMINDERS_OFF
    reminders.channels.data = list(patient.reminder_channels)
    return _settings_page(patient, reminders, form), 422


@bp.post("/settings/contact/resend")
@patient_required
@fresh_authentication_required
@contact_messages
def resend_contact() -> Response:
    return _waiting_change(contact_changes.resend,
                           "A new link is on its way to your new {kind}; the one sent before "
                           "no longer works.")


@bp.post("/settings/contact/cancel")
@patient_required
def cancel_contact() -> Response:
    return _waiting_change(contact_changes.cancel,
                           "The change of your {kind} is cancelled; its link no longer works.")


def _waiting_change(act: Callable[[Session, audit.Actor, Patient, str], bool],
                    done: str) -> Response:
    """Resend or cancel the patient's change waiting for its link, of the kind the form
    names: ``act`` does it (False: none was waiting); ``done`` says so, ``{kind}`` naming
    the address."""
    form = WaitingChangeForm()
    if not form.validate():
        abort(400)
    if act(db.session, current_actor(), own_patient(), form.kind.data):
        flash(done.format(kind=KIND_WORDS[form.kind.data]), "info")
    else:
        flash("That change was already confirmed or cancelled.", "info")
    return redirect(url_for("patient.settings", _anchor="contact"), 303)


def _asked(kind: str) -> bool:
    """Whether the form carried ``kind``'s field (the number only where texts are offered)."""
    return kind == contact_changes.EMAIL or _texts_offered()


def _texts_offered() -> bool:
    return any(channel.name == SMS for channel in offered_channels(current_app.config))


def _change_said(patient: Patient, kind: str, text: str) -> str | None:
    """Make the change ``text`` asks of ``kind``; what to tell the patient of it (None:
    nothing changed)."""
    done = contact_changes.update_contact(db.session, current_actor(), patient, kind, text,
                                          current_app.config)
    words = KIND_WORDS[kind]
    if done == "requested":
        way = "an email" if kind == contact_changes.EMAIL else "a text message"
        return (f"We sent {way} with a link to your new {words}. Open it within a day to "
                f"start using that {words}; until then nothing changes.")
    if done == "waiting":
        return (f"A link to that {words} is on its way already: open it, or send it again "
                "below.")
    if done == "removed":
        return f"Your {words} is removed from your contact details."
    return None


def _contact_form(patient: Patient) -> ContactDetailsForm:
    form = ContactDetailsForm(formdata=None)
    form.email.data = contact_changes.in_use(patient, contact_changes.EMAIL) or ""
    form.phone.data = patient.contact_phone or ""
    return form


def _settings_page(patient: Patient, form: ReminderSettingsForm,
                   contact_form: ContactDetailsForm) -> str:
    config = current_app.config
    offered = offered_channels(config)
    return render_template(
        "patient/settings.html", form=form, contact_form=contact_form, patient=patient,
        offered=offered, texts=_texts_offered(), push_key=push_public_key(config),
        email_in_use=contact_changes.in_use(patient, contact_changes.EMAIL),
        waiting=contact_changes.waiting_changes(db.session, patient),
        change_form=WaitingChangeForm(formdata=None), kind_words=KIND_WORDS,
        subscribe_form=PushSubscriptionForm(), removal_form=PushRemovalForm())


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
