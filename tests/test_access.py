"""Who may reach what, checked over every route of the app by construction.

The matrix is generated from ``app.url_map``: every endpoint and method (but HEAD, OPTIONS and
the static files) × every audience (signed out, patient, clinician, admin) × the ids of the
user's own records, another patient's of the same clinic, another clinic's and missing ones.
``ACCESS`` declares, by endpoint and with a reason, who may use each route; a route missing
from it fails ``test_every_route_is_declared``, so a new route cannot go unchecked.

The house's answers (outcomes/auth/access.py): a signed-out visitor is sent to sign in; a page
for another audience, and an id that is not the user's to see, answer 404 exactly like an id
that does not exist, and change nothing (no row, no audit event).
"""
from __future__ import annotations

import datetime as dt
import itertools
import re
import uuid
import zoneinfo
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.routing import Rule

import instruments
from outcomes import RecordIdConverter
from outcomes.models import Alert, Assessment, AuditEvent, Base, Patient, User
from outcomes.services.deliveries import write_delivery
from outcomes.services.exports import KINDS

from .conftest import PASSWORD, Factory, World, sign_in

MISSING = 999_999
MISSING_IDS = "missing ids"

ANONYMOUS, PATIENT, CLINICIAN, ADMIN = "anonymous", "patient", "clinician", "admin"
AUDIENCES = (ANONYMOUS, PATIENT, CLINICIAN, ADMIN)
EVERYONE = frozenset(AUDIENCES)
SIGNED_IN = frozenset({PATIENT, CLINICIAN, ADMIN})
STAFF = frozenset({CLINICIAN, ADMIN})
PATIENTS = frozenset({PATIENT})


@dataclass(frozen=True)
class Access:
    """Who may use an endpoint, and why."""

    audience: frozenset[str]
    reason: str
    #: The one answer a method gives every audience with the matrix's data (a made-up
    #: invitation token, say), when it is not an ordinary page.
    answers: Mapping[str, int] = field(default_factory=dict)
    #: It ends the session, so its answer is the sign-in page, for whoever sent it.
    signs_out: bool = False


ACCESS: dict[str, Access] = {
    "auth.index": Access(EVERYONE, "the front door: sends each person home, or to sign in"),
    "auth.login": Access(EVERYONE, "signing in; a signed-in person is sent home"),
    "auth.logout": Access(SIGNED_IN, "signing out ends this session", signs_out=True),
    "auth.sessions": Access(SIGNED_IN, "one's own sessions, patients and staff alike"),
    "auth.end_session": Access(SIGNED_IN, "ending one of one's own sessions",
                               answers={"POST": 404}),  # the matrix names none of theirs
    "auth.end_other_sessions": Access(SIGNED_IN, "signing out one's own other sessions"),
    "auth.sign_out_everywhere": Access(SIGNED_IN, "ending all one's own sessions, this one too",
                                       signs_out=True),
    "auth.change_password": Access(SIGNED_IN, "one's own password, given the current one"),
    "auth.second_factor": Access(EVERYONE, "the code after a right password, when nobody is signed in yet"),
    "auth.enrol_at_sign_in": Access(EVERYONE, "staff's first sign-in sets up the authenticator app"),
    "auth.security": Access(SIGNED_IN, "one's own sign-in factors (patients may add one)"),
    "auth.confirm_identity": Access(SIGNED_IN,
                                    "the password or a code again, before factors change"),
    "auth.replace_authenticator": Access(SIGNED_IN, "one's own new authenticator, once confirmed"),
    "auth.new_recovery_codes": Access(SIGNED_IN, "one's own new recovery codes, once confirmed"),
    "auth.passkey_sign_in_options": Access(
        EVERYONE, "a passkey's challenge after a right password, when nobody is signed in yet"),
    "auth.passkey_sign_in": Access(
        EVERYONE, "a passkey instead of the code, when nobody is signed in yet"),
    "auth.new_passkey": Access(SIGNED_IN, "one's own new passkey, once confirmed"),
    "auth.passkey_registration_options": Access(SIGNED_IN,
                                                "a new passkey's challenge, once confirmed"),
    "auth.add_passkey": Access(SIGNED_IN, "one's own new passkey, once confirmed"),
    "auth.rename_passkey": Access(SIGNED_IN, "renaming one's own passkey",
                                  answers={"POST": 404}),  # the matrix names none of theirs
    "auth.remove_passkey": Access(SIGNED_IN, "removing one's own passkey, once confirmed",
                                  answers={"POST": 404}),  # the matrix names none of theirs
    "auth.staff_factors": Access(frozenset({ADMIN}), "the clinic's staff and their factors"),
    "auth.reset_staff_factors": Access(frozenset({ADMIN}), "an admin resets a colleague's factors"),
    "auth.open_invitation": Access(
        EVERYONE, "an invited patient has no account yet; the token comes in the POST",
        answers={"POST": 404}),  # the matrix posts a made-up token
    "auth.old_invitation_link": Access(
        EVERYONE, "a token in a path has been logged, so such links answer 404 for everybody",
        answers={"GET": 404}),
    "auth.accept": Access(EVERYONE, "setting a password from an invitation, with no account yet",
                          answers={"POST": 404}),  # the matrix posts a made-up token
    "auth.open_staff_invitation": Access(EVERYONE, "an invited colleague has no account yet",
                                         answers={"POST": 404}),  # a made-up token
    "auth.accept_staff_invitation_link": Access(EVERYONE, "a colleague's password, from the link",
                                                answers={"POST": 404}),  # a made-up token
    "auth.questionnaire_link": Access(
        EVERYONE, "a reminder's link: its page changes nothing; the token comes in the POST",
        answers={"POST": 404}),  # the matrix posts no token
    "auth.forgot_password": Access(EVERYONE, "asking for a reset link; the same answer for any address"),
    "auth.password_reset": Access(EVERYONE, "a reset link's page; the token comes in the POST",
                                  answers={"POST": 404}),  # the matrix posts a made-up token
    "auth.choose_new_password": Access(EVERYONE, "a new password through a reset link",
                                       answers={"POST": 404}),  # a made-up token
    "auth.issue_password_reset": Access(STAFF, "a reset link and QR code for a clinic patient"),
    "auth.confirm_contact": Access(
        EVERYONE, "a contact change's link: its page changes nothing; the token comes in the "
        "POST, taken from the signed-in patient only"),
    "auth.confirm_contact_change": Access(
        PATIENTS, "confirming one's own new contact address by its link's token",
        answers={"POST": 404}),  # the matrix posts a made-up token
    "health.healthz": Access(EVERYONE, "load balancers ask signed out; it tells of no record"),
    "patient.crisis_help": Access(
        EVERYONE, "crisis resources stay one tap away when a session has ended"),
    "patient.home": Access(PATIENTS, "the patient's own due list and trend"),
    "patient.questionnaire": Access(PATIENTS, "a patient answers their own questionnaires"),
    "patient.result": Access(PATIENTS, "a patient's own result"),
    "patient.settings": Access(PATIENTS, "a patient's own reminder settings"),
    "patient.change_contact": Access(PATIENTS, "a patient's own contact details (a new one "
                                     "waits for its link)"),
    "patient.resend_contact": Access(PATIENTS, "sending one's own waiting change's link again"),
    "patient.cancel_contact": Access(PATIENTS, "cancelling one's own waiting contact change"),
    "patient.push_subscribe": Access(PATIENTS, "notifications on this browser, for oneself"),
    "patient.push_unsubscribe": Access(PATIENTS, "removing this browser's notifications"),
    "patient.service_worker": Access(EVERYONE, "browsers update it signed out too; it is no one's"),
    "clinician.patients": Access(STAFF, "the clinic's dashboard"),
    "clinician.search_patients": Access(STAFF, "the dashboard's search, by POST"),
    "clinician.alerts": Access(STAFF, "the clinic's triage inbox"),
    "clinician.acknowledge": Access(STAFF, "acknowledging an alert of the clinic"),
    "clinician.outcomes": Access(STAFF, "the clinic's outcomes"),
    "clinician.settings": Access(STAFF, "the clinic's settings, for staff to read"),
    "clinician.update_settings": Access(frozenset({ADMIN}),
                                        "admins change the clinic's notification settings"),
    "clinician.update_clinic_details": Access(
        frozenset({ADMIN}), "admins change the clinic's name, crisis phone, zone and wording"),
    "clinician.update_sign_in_policy": Access(
        frozenset({ADMIN}), "admins change the clinic's idle timeouts and staff MFA rule"),
    "clinician.staff": Access(frozenset({ADMIN}), "the clinic's staff and open invitations"),
    "clinician.invite_staff_member": Access(frozenset({ADMIN}), "admins invite colleagues"),
    "clinician.change_staff_role": Access(frozenset({ADMIN}), "admins change a colleague's role"),
    "clinician.set_staff_active": Access(frozenset({ADMIN}), "admins deactivate, reactivate"),
    "clinician.end_staff_sessions": Access(frozenset({ADMIN}),
                                           "admins sign a colleague out everywhere"),
    "clinician.revoke_staff_invitation_link": Access(
        frozenset({ADMIN}), "admins revoke an invitation", answers={"POST": 404}),  # none named
    "clinician.outbox": Access(STAFF, "development's outbox: 404 where NOTIFICATION_OUTBOX is off, "
                               "as here (test_outbox.py has it on)", answers={"GET": 404}),
    "clinician.enrol": Access(STAFF, "enrolling a patient at the clinic"),
    "clinician.reissue_invitation": Access(STAFF, "a new invitation link for a clinic patient"),
    "clinician.patient": Access(STAFF, "a clinic patient's record"),
    "clinician.patient_details": Access(STAFF, "a clinic patient's details and their history"),
    "clinician.update_patient_details": Access(STAFF, "correcting a clinic patient's details"),
    "clinician.reassign_patient": Access(STAFF, "reassigning a clinic patient's clinician"),
    "clinician.discharge_patient": Access(STAFF, "discharging a clinic patient"),
    # The matrix runs rules in path order: .../discharge before .../readmit, so the own
    # patient is discharged (303) and then re-admitted (303).
    "clinician.readmit_patient": Access(STAFF, "re-admitting a discharged clinic patient"),
    "clinician.reset_patient_sign_in_steps": Access(
        STAFF, "removing the extra sign-in step a clinic patient added and lost"),
    "clinician.assessment": Access(STAFF, "one questionnaire of a clinic patient"),
    "clinician.correct": Access(STAFF, "correcting a clinic patient's questionnaire"),
    "clinician.transcribe": Access(STAFF, "entering a clinic patient's paper form"),
    "clinician.plan": Access(STAFF, "a clinic patient's questionnaire plan"),
    "clinician.new_course": Access(STAFF, "starting a clinic patient's course"),
    "clinician.edit_course": Access(STAFF, "changing a clinic patient's course"),
    "clinician.new_infusion": Access(STAFF, "recording an infusion of a clinic patient"),
    "clinician.infusion": Access(STAFF, "an infusion's versions, and correcting it"),
    # The audit-trail kind of the CSV export is for admins only: see
    # test_the_audit_trail_export_is_for_admins_only.
    "exports.index": Access(STAFF, "the clinic's CSV exports"),
    "exports.find_patient": Access(STAFF, "from a clinic identifier to its FHIR export, by POST"),
    "exports.fhir": Access(STAFF, "a clinic patient's FHIR Bundle"),
}
#: Not routes of the app's own: WhiteNoise answers before the app (test_app.py checks them).
NOT_CHECKED = {"static"}

#: The record each id argument of a route names.
RECORD_IDS = {"patient_id": "patient", "assessment_id": "assessment", "alert_id": "alert",
              "course_id": "course", "infusion_id": "infusion"}
#: Values for the other arguments of routes.
ARGUMENTS = {"key": "phq9", "anything": "a-token-once-in-a-path"}


@dataclass
class Estate:
    world: World
    admin: User
    #: Record ids by whose they are: "own" (the signed-in patient, or the staff's clinic),
    #: "neighbour" (another patient of that clinic), "elsewhere" (another clinic's patient).
    records: dict[str, dict[str, int]]

    def user(self, role: str) -> User:
        return {PATIENT: self.world.patient_user, CLINICIAN: self.world.clinician,
                ADMIN: self.admin}[role]


@pytest.fixture
def estate(world: World, factory: Factory) -> Estate:
    """The world, with an admin, a second patient at the first clinic, and for each patient a
    course with an infusion and a PHQ-9 that opened an alert."""
    admin = factory.staff(world.clinic, "admin")
    neighbour = factory.patient(world.clinic, world.clinician, name="Sam Neighbour")
    return Estate(world, admin, {name: records_of(factory, patient) for name, patient in (
        ("own", world.patient), ("neighbour", neighbour), ("elsewhere", world.other_patient))})


def records_of(factory: Factory, patient: Patient) -> dict[str, int]:
    course = factory.course(patient)
    infusion = factory.infusion(course)
    assessment = factory.assessment(patient)
    alert = factory.session.scalars(
        select(Alert).where(Alert.assessment_id == assessment.id)).first()
    assert alert is not None, "the factory's PHQ-9 discloses risk, so it opens an alert"
    # Its notification to the clinician, queued: a row of the deliveries export.
    write_delivery(factory.session,
                   f"alert:{alert.id}:user:{patient.assigned_clinician_id}:email",
                   clinic_id=patient.clinic_id, purpose="alert", channel="email",
                   user_id=patient.assigned_clinician_id, alert_id=alert.id)
    factory.session.commit()
    return {"patient": patient.id, "course": course.id, "infusion": infusion.id,
            "assessment": assessment.id, "alert": alert.id}


# -- what the matrix posts -------------------------------------------------------------------

def clinic_today(estate: Estate) -> str:
    return dt.datetime.now(zoneinfo.ZoneInfo(estate.world.clinic.timezone)).date().isoformat()


def phq9(answers: list[int]) -> dict[str, str]:
    return {f"item_{number}": str(value) for number, value in enumerate(answers, start=1)}


def infusion_form(estate: Estate) -> dict[str, Any]:
    zone = zoneinfo.ZoneInfo(estate.world.clinic.timezone)
    earlier = dt.datetime.now(zone) - dt.timedelta(hours=1)
    return {"administered_at": earlier.strftime("%Y-%m-%dT%H:%M"), "weight_kg": "80",
            "dose_mg_per_kg": "0.5", "total_dose_mg": "40", "duration_minutes": "40",
            "systolic_before": "122", "diastolic_before": "78", "heart_rate_before": "72",
            "spo2_before": "98", "systolic_after": "126", "diastolic_after": "80",
            "heart_rate_after": "74", "spo2_after": "98", "side_effects": ["nausea"]}


def plan_form() -> dict[str, str]:
    data = {}
    for instrument in instruments.all():
        data.update({f"{instrument.key}__recurring": "y", f"{instrument.key}__every": "14",
                     f"{instrument.key}__follow_up": "8", f"{instrument.key}__then_every": "28"})
    return data


#: A form each route would accept from its own audience, so that a refusal is a refusal and
#: not a form error (each call gives a fresh submission key: a repeat cannot hide a write).
FORMS: dict[str, Callable[[Estate], dict[str, Any]]] = {
    "auth.login": lambda e: {"email": "nobody@example.org", "password": "not the password"},
    "auth.second_factor": lambda e: {"code": "123456"},
    "auth.enrol_at_sign_in": lambda e: {"code": "123456"},
    "auth.confirm_identity": lambda e: {"secret": PASSWORD},
    "auth.replace_authenticator": lambda e: {"code": "123456"},
    "auth.reset_staff_factors": lambda e: {"user_id": str(e.world.clinician.id)},
    "auth.open_invitation": lambda e: {"token": "a-made-up-token"},
    "auth.accept": lambda e: {"token": "a-made-up-token", "email": "new@example.org",
                              "password": PASSWORD, "confirm": PASSWORD},
    "auth.open_staff_invitation": lambda e: {"token": "a-made-up-token"},
    "auth.accept_staff_invitation_link": lambda e: {"token": "a-made-up-token",
                                                    "password": PASSWORD, "confirm": PASSWORD},
    "clinician.invite_staff_member": lambda e: {"email": f"{uuid.uuid4().hex[:8]}@example.org",
                                                "role": "clinician"},
    "clinician.change_staff_role": lambda e: {"user_id": str(e.world.clinician.id),
                                              "role": "admin"},
    "clinician.set_staff_active": lambda e: {"user_id": str(e.world.clinician.id),
                                             "active": "off"},
    "clinician.revoke_staff_invitation_link": lambda e: {"invitation_id": "999999"},
    "auth.forgot_password": lambda e: {"email": "nobody@example.org"},
    "auth.password_reset": lambda e: {"token": "a-made-up-token"},
    "auth.choose_new_password": lambda e: {"token": "a-made-up-token", "password": PASSWORD,
                                           "confirm": PASSWORD},
    "patient.questionnaire": lambda e: phq9([1] * 9),
    "patient.settings": lambda e: {"reminders": "off"},
    "patient.change_contact": lambda e: {"email": e.world.patient_user.email},
    "patient.resend_contact": lambda e: {"kind": "email"},
    "patient.cancel_contact": lambda e: {"kind": "email"},
    "auth.confirm_contact_change": lambda e: {"token": "a-made-up-token"},
    "auth.end_session": lambda e: {"session_id": "999999"},
    # The same password again: the routes checked after it still sign in and confirm with it.
    "auth.change_password": lambda e: {"current_password": PASSWORD, "password": PASSWORD,
                                       "confirm": PASSWORD},
    "clinician.end_staff_sessions": lambda e: {"user_id": str(e.world.clinician.id)},
    "auth.passkey_sign_in": lambda e: {"credential": "{}"},
    "auth.passkey_registration_options": lambda e: {"name": "Work laptop"},
    "auth.add_passkey": lambda e: {"credential": "{}"},
    "auth.rename_passkey": lambda e: {"passkey_id": "999999", "name": "Work laptop"},
    "auth.remove_passkey": lambda e: {"passkey_id": "999999"},
    "clinician.update_patient_details": lambda e: {
        "details-display_name": "Pat Example",
        "details-identifier": f"MRN-{uuid.uuid4().hex[:8]}",
        "details-contact_email": "", "details-contact_phone": "", "details-based_on": "1",
        "details-reason": "Identifier corrected"},
    "clinician.reassign_patient": lambda e: {"reassign-clinician": str(e.admin.id),
                                             "reassign-reason": "Clinician on leave"},
    "clinician.discharge_patient": lambda e: {"care-reason": "Course completed"},
    "clinician.readmit_patient": lambda e: {"care-reason": "Back for a new course"},
    # The details keep the clinic's own name (names are unique). The sign-in policy leaves
    # staff_mfa_required out: requiring it would send the matrix's later staff sign-ins to
    # the code step.
    "clinician.update_clinic_details": lambda e: {
        "name": e.world.clinic.name, "crisis_phone": "(415) 555-0123",
        "timezone": e.world.clinic.timezone, "alert_response_wording": ""},
    "clinician.update_sign_in_policy": lambda e: {"staff_idle_minutes": "20",
                                                  "patient_idle_minutes": ""},
    "clinician.search_patients": lambda e: {"q": "Example"},
    "clinician.update_settings": lambda e: {"reminder_limit": "2", "quiet_from": "22:00",
                                            "quiet_until": "08:00", "escalation_minutes": "20",
                                            "message_sender_name": "Harbour"},
    "clinician.acknowledge": lambda e: {"note": "Called; safe."},
    "clinician.enrol": lambda e: {"identifier": f"MRN-{uuid.uuid4().hex[:8]}",
                                  "display_name": "Kim Example",
                                  "assigned_clinician": str(e.world.clinician.id)},
    "clinician.transcribe": lambda e: {**phq9([2] * 9), "administered_on": clinic_today(e)},
    "clinician.correct": lambda e: {**phq9([1] * 8 + [0]), "administered_on": clinic_today(e),
                                    "amendment_reason": "Item 9 was misread."},
    "clinician.plan": lambda e: plan_form(),
    "clinician.new_course": lambda e: {"indication": "depression", "planned_infusions": "4",
                                       "start_date": clinic_today(e)},
    "clinician.edit_course": lambda e: {"status": "active", "planned_infusions": "8"},
    "clinician.new_infusion": infusion_form,
    "clinician.infusion": lambda e: {**infusion_form(e), "corrects_version": "1",
                                     "correction_reason": "The weight was mistyped."},
    "exports.index": lambda e: {"kind": "scores", "instrument": ""},
    "exports.find_patient": lambda e: {"identifier": e.world.patient.identifier},
    "exports.fhir": lambda e: {"deidentified": "y"},
}


def form_for(endpoint: str, estate: Estate) -> dict[str, Any]:
    return {"submission_key": uuid.uuid4().hex, **FORMS.get(endpoint, lambda e: {})(estate)}


# -- the matrix --------------------------------------------------------------------------------

def checked_rules(app: Flask) -> list[Rule]:
    """Every rule of the app but the static files, those that sign out last (they end the
    session the rest of a role's checks use)."""
    rules = [rule for rule in app.url_map.iter_rules() if rule.endpoint not in NOT_CHECKED]
    return sorted(rules, key=lambda rule: (
        rule.endpoint in ACCESS and ACCESS[rule.endpoint].signs_out, rule.rule))


def methods_of(rule: Rule) -> list[str]:
    return sorted(rule.methods - {"HEAD", "OPTIONS"})


def id_arguments(rule: Rule) -> list[str]:
    """The arguments of ``rule`` that are record ids (``<id:...>``)."""
    # Werkzeug keeps a bound rule's converters by argument name; none of its public API says
    # which converter an argument has.
    return [name for name, converter in rule._converters.items()
            if isinstance(converter, RecordIdConverter)]


@dataclass(frozen=True)
class Case:
    """One way of filling a route's ids: each id argument names whose record it takes."""

    label: str
    owners: Mapping[str, str]
    refused: bool


def own_case(rule: Rule) -> Case:
    return Case("own records", {name: "own" for name in id_arguments(rule)}, refused=False)


def cases_for(rule: Rule, role: str) -> Iterator[Case]:
    """The own records, a missing id, then every mix of own and foreign ids."""
    names = id_arguments(rule)
    yield own_case(rule)
    if not names or role not in ACCESS[rule.endpoint].audience or role == ANONYMOUS:
        return
    yield Case(MISSING_IDS, {name: "missing" for name in names}, refused=True)
    for foreign in ("neighbour", "elsewhere"):
        for mix in itertools.product(("own", foreign), repeat=len(names)):
            owners = dict(zip(names, mix))
            if foreign not in mix:
                continue
            # Staff may see any patient of their clinic, as long as the ids agree.
            if foreign == "neighbour" and role != PATIENT and set(mix) == {foreign}:
                continue
            whose = {"neighbour": "another patient's of the same clinic",
                     "elsewhere": "another clinic's"}[foreign]
            label = ", ".join(f"{whose if owner == foreign else 'own'} {name}"
                              for name, owner in owners.items())
            yield Case(label, owners, refused=True)


def path_for(app: Flask, rule: Rule, method: str, case: Case, estate: Estate) -> str:
    values: dict[str, Any] = {}
    for name in rule.arguments:
        if name in RECORD_IDS:
            owner = case.owners[name]
            values[name] = MISSING if owner == "missing" else \
                estate.records[owner][RECORD_IDS[name]]
        else:
            values[name] = ARGUMENTS[name]
    return app.url_map.bind("localhost").build(rule.endpoint, values, method=method)


def snapshot(session: Session) -> dict[str, list[tuple]]:
    """Every row of every table, as committed."""
    session.rollback()  # a new transaction sees every commit so far (PostgreSQL)
    return {table.name: [tuple(row) for row in session.execute(
        select(table).order_by(*table.primary_key.columns))]
        for table in Base.metadata.sorted_tables}


def changed_tables(before: dict[str, list[tuple]], after: dict[str, list[tuple]]) -> list[str]:
    return [name for name in before if before[name] != after[name]]


def signed_in_client(app: Flask, role: str, estate: Estate) -> FlaskClient:
    client = app.test_client()
    if role != ANONYMOUS:
        sign_in(client, estate.user(role))
    return client


def page_of(response) -> bytes:
    """The page, with its CSRF tokens (signed with the time, so they change each second)
    masked, so two answers compare as bytes."""
    return re.sub(rb'(name="csrf_token"[^>]*value=")[^"]*', rb"\1", response.get_data())


def forget_messages(client: FlaskClient) -> None:
    """Drop messages a page left for the next one, so the next answers compare as bytes."""
    with client.session_transaction() as browser_session:
        browser_session.pop("_flashes", None)


@pytest.mark.parametrize("role", AUDIENCES)
def test_the_access_matrix(app, estate, session, role, request):
    """Each route answers this role as ACCESS declares, for its own records; every foreign or
    mixed id answers exactly like a missing one and changes nothing."""
    client = signed_in_client(app, role, estate)
    failures: list[str] = []
    cells = 0
    state = snapshot(session)
    for rule in checked_rules(app):
        access = ACCESS[rule.endpoint]
        for method in methods_of(rule):
            missing_body = None
            # The refused cases first: the own case may leave a message for the next page.
            for case in sorted(cases_for(rule, role), key=lambda case: not case.refused):
                cells += 1
                path = path_for(app, rule, method, case, estate)
                response = client.open(path, method=method,
                                       data=form_for(rule.endpoint, estate)
                                       if method == "POST" else None)
                body = page_of(response)
                where = f"{method} {rule.endpoint} [{role}] {case.label} ({path})"
                problem = judge(access, role, method, case, response)
                if case.label == MISSING_IDS:
                    missing_body = body
                elif case.refused and not problem and body != missing_body:
                    problem = "404, but not the same page as a missing id's"
                now = snapshot(session)
                if (case.refused or refused(access, role)) and changed_tables(state, now):
                    problem = f"{problem or 'refused'}, yet it changed " + \
                        ", ".join(changed_tables(state, now))
                state = now
                if problem:
                    failures.append(f"{where}: {problem}")
                forget_messages(client)
    request.node.user_properties.append(("cells", cells))
    print(f"{role}: {cells} cells")
    assert not failures, f"{len(failures)} of {cells} cells:\n" + "\n".join(failures)


def refused(access: Access, role: str) -> bool:
    return role not in access.audience


def judge(access: Access, role: str, method: str, case: Case, response) -> str | None:
    """What is wrong with this answer, or None."""
    status = response.status_code
    if refused(access, role):
        if role == ANONYMOUS:
            if not sends_to_sign_in(response):
                return f"{status} to {response.location or 'nowhere'}, expected the sign-in " \
                    "redirect"
            return None
        return None if status == 404 else f"{status}, expected 404 (another audience's route)"
    if case.refused:
        return None if status == 404 else f"{status}, expected 404 like a missing id"
    if method in access.answers:
        expected = access.answers[method]
        return None if status == expected else f"{status}, expected {expected} (declared)"
    if status >= 500 or status in (404, 405):
        return f"{status} to its own audience"
    if role != ANONYMOUS and sends_to_sign_in(response) and not access.signs_out:
        return "sent a signed-in user to sign in"
    return None


def sends_to_sign_in(response) -> bool:
    return response.status_code == 302 and urlsplit(response.location or "").path == "/login"


def test_every_route_is_declared(app):
    """Every endpoint of the app is in ACCESS (or NOT_CHECKED), every argument of its rules
    can be filled, and ACCESS names no endpoint the app no longer has."""
    problems = []
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    for rule in app.url_map.iter_rules():
        if rule.endpoint in NOT_CHECKED:
            continue
        if rule.endpoint not in ACCESS:
            problems.append(f"{rule.endpoint} ({rule.rule}) is not in ACCESS: add it to the "
                            "table with who may use it and why")
        for name in rule.arguments:
            if name not in RECORD_IDS and name not in ARGUMENTS:
                problems.append(f"{rule.endpoint}: no value for <{name}>: add it to "
                                "RECORD_IDS (a record id) or ARGUMENTS")
            if name in RECORD_IDS and name not in id_arguments(rule):
                problems.append(f"{rule.endpoint}: <{name}> is not an <id:...> argument")
        for name in id_arguments(rule):
            if name not in RECORD_IDS:
                problems.append(f"{rule.endpoint}: <id:{name}> names no record in RECORD_IDS")
    problems += [f"{endpoint} is in ACCESS but not a route of the app"
                 for endpoint in ACCESS.keys() - endpoints]
    problems += [f"FORMS has {endpoint}, which takes no POST" for endpoint in FORMS
                 if not any("POST" in rule.methods for rule in app.url_map.iter_rules()
                            if rule.endpoint == endpoint)]
    assert not problems, "\n".join(problems)


#: Pages of one patient's record that write no read to the audit trail, and why.
UNAUDITED_READS = {
    "patient.questionnaire": "a blank form; answers held when a session ended come back once, "
                             "to the patient who gave them",
}


def reads_a_record(rule: Rule) -> bool:
    """A page of one patient's record: it names the patient, or it is the patient's own."""
    return "GET" in rule.methods and (
        "patient_id" in rule.arguments or ACCESS[rule.endpoint].audience == PATIENTS)


@pytest.mark.parametrize("role", [PATIENT, CLINICIAN])
def test_every_read_of_a_patients_record_is_audited(app, estate, session, role):
    """Each page of a patient's record, found from the url_map, audits its read: by whom and
    of which patient."""
    client = signed_in_client(app, role, estate)
    patient_id, reader = estate.records["own"]["patient"], estate.user(role)
    pages, unaudited = [], []
    for rule in checked_rules(app):
        if role not in ACCESS[rule.endpoint].audience or not reads_a_record(rule) \
                or rule.endpoint in UNAUDITED_READS:
            continue
        session.rollback()
        last = session.scalar(select(func.max(AuditEvent.id)))
        path = path_for(app, rule, "GET", own_case(rule), estate)
        assert client.get(path).status_code == 200, path
        pages.append(path)
        session.rollback()
        if not session.scalars(select(AuditEvent.id).where(
                AuditEvent.id > last, AuditEvent.patient_id == patient_id,
                AuditEvent.actor_id == reader.id)).first():
            unaudited.append(f"GET {rule.endpoint} ({path}) [{role}]")
    assert pages
    assert not unaudited, "reads of a patient's record with no audit event:\n" + \
        "\n".join(unaudited)


# -- what the matrix cannot say by itself -------------------------------------------------------

def test_the_audit_trail_export_is_for_admins_only(app, estate, session):
    clinician = signed_in_client(app, CLINICIAN, estate)
    assert b'value="audit"' not in clinician.get("/exports/").data
    before = snapshot(session)
    refused_export = clinician.post("/exports/", data={"kind": "audit", "instrument": ""})
    assert refused_export.status_code == 404
    assert not changed_tables(before, snapshot(session))
    admin = signed_in_client(app, ADMIN, estate)
    assert b'value="audit"' in admin.get("/exports/").data
    export = admin.post("/exports/", data={"kind": "audit", "instrument": ""})
    assert export.status_code == 200 and export.mimetype == "text/csv"
    assert export.get_data()
    assert session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "export.csv", AuditEvent.actor_id == estate.admin.id)) == 1


def test_another_clinics_identifier_answers_like_an_unknown_one(app, estate, session):
    """Routes that take a clinic identifier (an MRN) in a form, not an id in the path."""
    client = signed_in_client(app, CLINICIAN, estate)
    elsewhere = estate.world.other_patient.identifier
    csv = {"kind": "scores", "instrument": ""}
    for path, field_name, extra in (("/exports/fhir", "identifier", {}),
                                    ("/exports/", "patient", csv)):
        before = snapshot(session)
        other = client.post(path, data={field_name: elsewhere, **extra})
        forget_messages(client)
        unknown = client.post(path, data={field_name: "MRN-NOBODY", **extra})
        forget_messages(client)
        assert (other.status_code, other.location) == (unknown.status_code, unknown.location)
        # The form shows back what was typed; nothing else may differ.
        assert page_of(other).replace(elsewhere.encode(), b"MRN-NOBODY") == \
            page_of(unknown), path
        assert not changed_tables(before, snapshot(session)), path
    for patient in (estate.world.patient, estate.world.other_patient):
        search = client.post("/clinic/patients/search", data={"q": patient.identifier})
        found = f'href="/clinic/patients/{patient.id}"'.encode() in client.get(search.location).data
        assert found == (patient is estate.world.patient)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_export_kind_holds_the_clinics_own_records_only(app, estate, kind):
    admin = signed_in_client(app, ADMIN, estate)
    export = admin.post("/exports/", data={"kind": kind, "instrument": ""})
    assert export.status_code == 200 and export.mimetype == "text/csv"
    rows = export.get_data().decode("utf-8-sig")
    assert estate.world.patient.identifier in rows
    assert estate.world.other_patient.identifier not in rows
    assert estate.world.other_clinician.email not in rows


def test_a_patient_cannot_be_assigned_to_another_clinics_clinician(app, estate, session):
    client = signed_in_client(app, CLINICIAN, estate)
    before = snapshot(session)
    response = client.post("/clinic/patients/new", data={
        **form_for("clinician.enrol", estate),
        "assigned_clinician": str(estate.world.other_clinician.id)})
    assert response.status_code == 422
    assert not changed_tables(before, snapshot(session))


def test_patient_list_shows_only_the_clinics_own_patients(client, world, factory):
    factory.patient(world.other_clinic, world.other_clinician, name="Zed Elsewhere")
    sign_in(client, world.clinician)
    page = client.get("/clinic/patients").data.decode()
    assert world.patient.identifier in page
    assert world.other_patient.identifier not in page and "Zed Elsewhere" not in page


def test_reading_a_patient_record_is_audited_with_who_where_and_when(client, world, session):
    sign_in(client, world.clinician)
    response = client.get(f"/clinic/patients/{world.patient.id}",
                          headers={"X-Request-ID": "chosen-by-the-client"})
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "patient.view"))
    assert (event.actor_id, event.actor_role, event.clinic_id, event.patient_id) == \
        (world.clinician.id, "clinician", world.clinic.id, world.patient.id)
    assert event.ip_address == "127.0.0.1"
    assert event.request_id == response.headers["X-Request-ID"] != "chosen-by-the-client"
    assert event.occurred_at.tzinfo is not None


def test_acknowledging_an_alert_keeps_who_when_and_what(client, world, factory, session):
    alert_id = session.scalars(select(Alert.id).where(
        Alert.assessment_id == factory.assessment(world.patient).id)).one()
    sign_in(client, world.clinician)
    empty = client.post(f"/clinic/alerts/{alert_id}/acknowledge", data={"note": " "})
    assert empty.status_code == 302
    session.expire_all()
    assert session.get(Alert, alert_id).is_open
    client.post(f"/clinic/alerts/{alert_id}/acknowledge", data={"note": "Called; safe."})
    session.expire_all()
    alert = session.get(Alert, alert_id)
    assert not alert.is_open and alert.acknowledged_by_id == world.clinician.id
    assert alert.acknowledgement_note == "Called; safe."
    again = client.post(f"/clinic/alerts/{alert_id}/acknowledge", data={"note": "again"})
    assert b"already acknowledged" in client.get(again.location).data
    assert session.scalar(select(AuditEvent).where(AuditEvent.action == "alert.acknowledge"))
    assert session.scalars(select(Assessment)).all()  # the assessment itself is untouched


@pytest.mark.parametrize("path", ["/clinic/patients/2147483648", "/clinic/patients/0",
                                  "/clinic/patients/99999999999999999999999",
                                  "/clinic/patients/1/assessments/9223372036854775808"])
def test_absurd_ids_are_a_plain_404(client, world, path):
    sign_in(client, world.clinician)
    assert client.get(path).status_code == 404


@pytest.mark.parametrize("field_name", ["identifier", "display_name"])
def test_control_characters_are_refused_with_a_message_and_change_nothing(
        client, world, session, field_name):
    sign_in(client, world.clinician)
    before = session.scalar(select(func.count(Patient.id)))
    data = {"identifier": "MRN-9", "display_name": "Kim Example",
            "assigned_clinician": str(world.clinician.id)}
    data[field_name] += "\x00"
    response = client.post("/clinic/patients/new", data=data)
    assert response.status_code == 400
    assert b"cannot be stored" in response.data
    assert session.scalar(select(func.count(Patient.id))) == before


def test_login_with_a_nul_character_is_a_400_not_a_500(client):
    response = client.post("/login", data={"email": "a\x00@example.org", "password": "x" * 12})
    assert response.status_code == 400


def test_an_oversized_form_is_refused_before_it_is_read(client):
    response = client.post("/login", data={"email": "a@example.org", "password": "x" * 2_000_000})
    assert response.status_code == 413
