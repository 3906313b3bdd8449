"""A patient's administrative details in the browser (issue 12 item 4): staff correct the
name, identifier and contact details, reassign the clinician, discharge and re-admit — each
change with its reason, as a new version (version 1 as enrolled), audited old → new; no
change stores nothing. A discharged patient is asked for nothing and reminded of nothing, is
off the dashboard unless asked for, keeps their history and exports, and still signs in;
their crisis answers still open an alert. Another clinic's patient: 404. SQLite and
PostgreSQL."""
from __future__ import annotations

import dataclasses
import datetime as dt
import re

import pytest
from sqlalchemy import select

from outcomes import create_app
from outcomes.extensions import db
from outcomes.models import (
    Alert,
    AuditEvent,
    Patient,
    PatientRevision,
    PatientSummary,
    PlanEntry,
)
from outcomes.services import contact_changes, contact_links, patient_admin
from outcomes.services.audit import Actor
from outcomes.services.schedule import (
    Timeline,
    asked_between,
    due_questionnaires,
    next_due_on,
    outstanding,
)

from .concurrency import at_once, skip_unless_postgresql
from .conftest import PASSWORD, base_config, csrf_token, sign_in
from .helpers import T0, answers_form, as_dicts, post_export
from .notification_world import (  # noqa: F401  (fixtures)
    deliveries,
    mailbox,
    pinned,
    remindable_patient,
    tick,
)

REASON = "Name misspelt at enrolment"


@pytest.fixture
def staff_client(app, world):
    client = app.test_client()
    sign_in(client, world.clinician)
    return client


@pytest.fixture
def patient_client(app, world):
    client = app.test_client()
    sign_in(client, world.patient_user)
    return client


def details_path(patient: Patient, what: str = "details") -> str:
    return f"/clinic/patients/{patient.id}/{what}"


def details_form(patient: Patient, based_on: int = 1, reason: str = REASON,
                 **changes: str) -> dict[str, str]:
    """The details form as the page shows it for ``patient``, with ``changes``."""
    values = {"display_name": patient.display_name, "identifier": patient.identifier,
              "contact_email": patient.contact_email or "",
              "contact_phone": patient.contact_phone or "", **changes}
    return {**{f"details-{name}": value for name, value in values.items()},
            "details-based_on": str(based_on), "details-reason": reason}


def revisions(session, patient: Patient) -> list[PatientRevision]:
    session.rollback()
    return list(session.scalars(select(PatientRevision).where(
        PatientRevision.patient_id == patient.id).order_by(PatientRevision.version)))


def fresh(session, patient: Patient) -> Patient:
    session.rollback()
    session.expire_all()
    return session.get(Patient, patient.id)


def actions(session, action: str) -> list[AuditEvent]:
    session.rollback()
    return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                .order_by(AuditEvent.id)))


def rows(html: bytes) -> list[int]:
    return [int(found) for found in re.findall(rb'href="/clinic/patients/(\d+)"', html)]


# -- versions ---------------------------------------------------------------------------------

def test_enrolment_writes_version_1_as_enrolled(staff_client, world, session):
    page = staff_client.post("/clinic/patients/new", data={
        "identifier": "MRN-NEW-1", "display_name": "Kim Example",
        "contact_email": "Kim@Example.org", "assigned_clinician": str(world.clinician.id),
        "submission_key": "k-enrol-1"})
    assert page.status_code == 200
    patient = session.scalars(select(Patient).where(Patient.identifier == "MRN-NEW-1")).one()
    [first] = revisions(session, patient)
    assert (first.version, first.display_name, first.identifier, first.contact_email,
            first.assigned_clinician_id, first.discharged, first.reason, first.changed_by_id) == (
        1, "Kim Example", "MRN-NEW-1", "kim@example.org", world.clinician.id, False,
        "As enrolled", world.clinician.id)


def test_a_corrected_name_is_a_new_version_audited_and_shown_in_the_history(
        staff_client, world, session):
    patient = world.patient
    answer = staff_client.post(details_path(patient),
                               data=details_form(patient, display_name="Pat Exemple"))
    assert answer.status_code == 303 and answer.location.endswith(details_path(patient))
    assert fresh(session, patient).display_name == "Pat Exemple"
    first, second = revisions(session, patient)
    assert (second.version, second.display_name, second.identifier, second.reason,
            second.changed_by_id, second.assigned_clinician_id) == (
        2, "Pat Exemple", patient.identifier, REASON, world.clinician.id, world.clinician.id)
    [event] = actions(session, "patient.update_details")
    assert (event.old_values, event.new_values, event.reason, event.object_version,
            event.patient_id) == ({"display_name": "Pat Example"},
                                  {"display_name": "Pat Exemple"}, REASON, 2, patient.id)
    page = staff_client.get(details_path(patient))
    assert page.status_code == 200
    history = page.data.decode()
    assert "Saved: name changed." in history
    assert re.search(r"Name: <del>Pat Example</del> → <strong>Pat Exemple</strong>", history)
    assert REASON in history and "As enrolled" in history
    assert history.index('id="version-2"') < history.index('id="version-1"')
    assert actions(session, "patient.view_details")


def test_no_change_stores_nothing(staff_client, world, session):
    answer = staff_client.post(details_path(world.patient), data=details_form(world.patient))
    assert answer.status_code == 303
    assert b"Nothing was changed" in staff_client.get(answer.location).data
    assert len(revisions(session, world.patient)) == 1
    assert not actions(session, "patient.update_details")


@pytest.mark.parametrize(("changes", "message"), [
    ({"reason": ""}, b"Give the reason for the change."),
    ({"reason": "\u200b "}, b"Give the reason for the change."),
    ({"display_name": " "}, b"Give the patient&#39;s name."),
    ({"identifier": "x" * 65}, b"Keep the identifier to 64 characters."),
    ({"contact_email": "not-an-address"}, b"That is not a valid email address."),
    ({"contact_phone": "12"}, b"That is not a valid phone number in US"),
    ({"based_on": "x"}, b"Not a valid integer value."),
    ({"based_on": "99"}, b"The form was out of date."),
])
def test_bad_input_gets_its_message_and_changes_nothing(staff_client, world, session, changes,
                                                         message):
    data = details_form(world.patient, display_name="Pat Exemple")
    data.update({f"details-{name}": value for name, value in changes.items()})
    page = staff_client.post(details_path(world.patient), data=data)
    assert page.status_code == 422 and message in page.data, page.data[:3000]
    assert fresh(session, world.patient).display_name == "Pat Example"
    assert len(revisions(session, world.patient)) == 1
    assert not actions(session, "patient.update_details")


def test_an_identifier_another_patient_has_is_refused_plainly(staff_client, world, factory,
                                                              session):
    neighbour = factory.patient(world.clinic, world.clinician, identifier="MRN-TAKEN")
    page = staff_client.post(details_path(world.patient),
                             data=details_form(world.patient, identifier=" MRN-TAKEN "))
    assert page.status_code == 422
    assert b"Another patient of this clinic already has this identifier." in page.data
    assert fresh(session, world.patient).identifier != neighbour.identifier
    # Another clinic's identifiers are theirs: the same MRN is fine here.
    answer = staff_client.post(details_path(world.patient), data=details_form(
        world.patient, identifier=world.other_patient.identifier))
    assert answer.status_code == 303
    assert fresh(session, world.patient).identifier == world.other_patient.identifier


def test_contact_details_are_stored_normalised_and_the_phone_audited_masked(
        staff_client, world, session):
    answer = staff_client.post(details_path(world.patient), data=details_form(
        world.patient, contact_email=" Pat@Example.ORG ", contact_phone="(201) 555-0123"))
    assert answer.status_code == 303
    patient = fresh(session, world.patient)
    assert (patient.contact_email, patient.contact_phone) == ("pat@example.org", "+12015550123")
    [event] = actions(session, "patient.update_details")
    assert event.new_values == {"contact_email": "pat@example.org", "contact_phone": "…23"}
    latest = revisions(session, patient)[-1]
    assert (latest.contact_email, latest.contact_phone) == ("pat@example.org", "+12015550123")
    # Blank removes them, as a change of its own.
    answer = staff_client.post(details_path(patient), data=details_form(
        patient, based_on=2, contact_email="", contact_phone=""))
    assert answer.status_code == 303
    assert (fresh(session, patient).contact_email, fresh(session, patient).contact_phone) == (
        None, None)
    assert len(revisions(session, patient)) == 3


def test_the_clinics_correction_revokes_the_patients_waiting_change_of_that_address(
        app, staff_client, world, session):
    patient = world.patient
    with app.app_context():
        for kind, value in (("email", "typo@example.org"), ("phone", "+12015550142")):
            contact_changes.request_change(session, Actor(world.patient_user), patient, kind,
                                           value)
        session.commit()
    answer = staff_client.post(details_path(patient), data=details_form(
        patient, contact_email="pat@example.org"))
    assert answer.status_code == 303
    session.rollback()
    # The email's link can no longer overwrite the correction; the number's still works.
    assert contact_links.waiting_change(session, patient.id, "email") is None
    assert contact_links.waiting_change(session, patient.id, "phone") is not None
    [event] = actions(session, "patient.update_details")
    assert event.details == {"contact_changes_revoked": ["email"]}
    assert fresh(session, patient).contact_email == "pat@example.org"


def test_a_form_from_before_someone_elses_change_keeps_it(staff_client, world, session):
    patient = world.patient
    staff_client.post(details_path(patient), data=details_form(patient, display_name="Pat B"))
    # The same form's version, edited elsewhere: the other field's change stands.
    answer = staff_client.post(details_path(patient), data=details_form(
        patient, based_on=1, display_name="Pat Example", contact_email="pat@example.org"))
    assert answer.status_code == 303
    now = fresh(session, patient)
    assert (now.display_name, now.contact_email) == ("Pat B", "pat@example.org")
    # The same field, changed differently: refused, and the form shows the latest.
    page = staff_client.post(details_path(patient), data=details_form(
        patient, based_on=1, display_name="Pat C"))
    assert page.status_code == 422
    assert b"Name changed while you were editing" in page.data
    assert b'value="Pat B"' in page.data and b'value="3"' in page.data
    assert fresh(session, patient).display_name == "Pat B"
    assert [r.version for r in revisions(session, patient)] == [1, 2, 3]


def test_two_edits_at_once_take_consecutive_versions_and_lose_nothing(
        app, world, session, database_url):
    skip_unless_postgresql(database_url)
    patient = world.patient
    edits = [{"display_name": "Pat Racing"}, {"contact_email": "race@example.org"},
             {"contact_phone": "+1 201 555 0199"}, {"identifier": "MRN-RACE"}]

    def editor(changes: dict[str, str]):
        client = app.test_client()
        sign_in(client, world.clinician)
        data = details_form(patient, **changes)
        return lambda: client.post(details_path(patient), data=data).status_code

    statuses = at_once(*[editor(changes) for changes in edits])
    assert statuses == [303] * len(edits)
    versions = revisions(session, patient)
    assert [r.version for r in versions] == [1, 2, 3, 4, 5]
    latest = fresh(session, patient)
    assert (latest.display_name, latest.contact_email, latest.contact_phone,
            latest.identifier) == ("Pat Racing", "race@example.org", "+12015550199",
                                   "MRN-RACE")
    last = versions[-1]
    assert (last.display_name, last.contact_email, last.contact_phone, last.identifier) == (
        "Pat Racing", "race@example.org", "+12015550199", "MRN-RACE")


# -- the clinician ----------------------------------------------------------------------------

def test_reassigning_to_a_colleague_is_versioned_and_audited(staff_client, world, factory,
                                                             session):
    admin = factory.staff(world.clinic, "admin")
    answer = staff_client.post(details_path(world.patient, "clinician"), data={
        "reassign-clinician": str(admin.id), "reassign-reason": "Clinician on leave"})
    assert answer.status_code == 303
    assert fresh(session, world.patient).assigned_clinician_id == admin.id
    latest = revisions(session, world.patient)[-1]
    assert (latest.version, latest.assigned_clinician_id, latest.reason) == (
        2, admin.id, "Clinician on leave")
    [event] = actions(session, "patient.reassign")
    assert (event.old_values, event.new_values) == (
        {"assigned_clinician_id": world.clinician.id}, {"assigned_clinician_id": admin.id})
    assert f"Clinician: <del>{world.clinician.email}</del> → <strong>{admin.email}</strong>" \
        in staff_client.get(answer.location).data.decode()
    # The same again: nothing stored.
    staff_client.post(details_path(world.patient, "clinician"), data={
        "reassign-clinician": str(admin.id), "reassign-reason": "Again"})
    assert len(revisions(session, world.patient)) == 2


def test_only_an_active_colleague_of_the_clinic_can_be_assigned(
        app, staff_client, world, factory, session):
    gone = factory.staff(world.clinic)
    gone.active = False
    session.commit()
    for chosen in (world.other_clinician.id, gone.id, world.patient_user.id, 999_999, "x",
                   "٣"):
        page = staff_client.post(details_path(world.patient, "clinician"), data={
            "reassign-clinician": str(chosen), "reassign-reason": "Moving"})
        assert page.status_code == 422
        assert b"Choose an active clinician or admin of this clinic." in page.data
    page = staff_client.post(details_path(world.patient, "clinician"), data={
        "reassign-clinician": str(factory.staff(world.clinic).id)})
    assert page.status_code == 422 and b"Give the reason for the change." in page.data
    assert fresh(session, world.patient).assigned_clinician_id == world.clinician.id
    assert len(revisions(session, world.patient)) == 1
    page = staff_client.get(details_path(world.patient)).data.decode()
    assert world.clinician.email in page and gone.email not in page
    assert world.other_clinician.email not in page


# -- discharge --------------------------------------------------------------------------------

def discharge(client, patient: Patient, reason: str = "Course completed, well") -> None:
    answer = client.post(details_path(patient, "discharge"), data={"care-reason": reason})
    assert answer.status_code == 303, answer.data[:2000]


def test_discharge_and_readmission_are_versions_with_their_reasons(staff_client, world,
                                                                   session):
    patient = world.patient
    page = staff_client.post(details_path(patient, "discharge"), data={"care-reason": " "})
    assert page.status_code == 422 and b"Give the reason for the change." in page.data
    assert fresh(session, patient).discharged_at is None
    discharge(staff_client, patient)
    assert fresh(session, patient).discharged_at is not None
    again = staff_client.post(details_path(patient, "discharge"), data={"care-reason": "x"})
    assert again.status_code == 422 and b"already discharged" in again.data
    answer = staff_client.post(details_path(patient, "readmit"),
                               data={"care-reason": "Relapse, new course"})
    assert answer.status_code == 303
    assert fresh(session, patient).discharged_at is None
    refused = staff_client.post(details_path(patient, "readmit"), data={"care-reason": "x"})
    assert refused.status_code == 422 and b"under the clinic&#39;s care already" in refused.data
    assert [(r.version, r.discharged, r.reason) for r in revisions(session, patient)] == [
        (1, False, "As enrolled"), (2, True, "Course completed, well"),
        (3, False, "Relapse, new course")]
    assert [(e.old_values, e.new_values) for e in actions(session, "patient.discharge")
            + actions(session, "patient.readmit")] == [
        ({"discharged": False}, {"discharged": True}),
        ({"discharged": True}, {"discharged": False})]


def test_a_discharged_patient_has_nothing_due_and_signs_in_to_their_history(
        staff_client, patient_client, world, factory, session):
    patient = world.patient
    done = factory.assessment(patient, "gad7", [1] * 7)
    home = patient_client.get("/me/").data.decode()
    assert "/me/questionnaires/phq9" in home  # the baseline is due
    discharge(staff_client, patient)
    home = patient_client.get("/me/").data.decode()
    assert "Your clinic has closed your questionnaires for now" in home
    assert "/me/questionnaires/" not in home
    assert f"/me/results/{done.id}" in home
    assert patient_client.get(f"/me/results/{done.id}").status_code == 200
    record = staff_client.get(f"/clinic/patients/{patient.id}").data.decode()
    assert "Nothing due: the patient is discharged." in record
    assert 'id="discharged-status"' in record
    staff_client.post(details_path(patient, "readmit"), data={"care-reason": "Back"})
    assert "/me/questionnaires/phq9" in patient_client.get("/me/").data.decode()


def test_the_dashboard_hides_discharged_patients_unless_asked(staff_client, world, factory,
                                                              session):
    patient = world.patient
    assert patient.id in rows(staff_client.get("/clinic/patients").data)
    discharge(staff_client, patient)
    page = staff_client.get("/clinic/patients").data
    assert patient.id not in rows(page)
    assert b"1 discharged patient is not listed" in page
    assert b'<option value="">All patients under care</option>' in page
    shown = staff_client.get("/clinic/patients?filter=discharged").data
    assert rows(shown) == [patient.id] and b">discharged</span>" in shown
    assert patient.id not in rows(staff_client.get("/clinic/patients?filter=overdue").data)
    session.rollback()
    assert session.get(PatientSummary, patient.id).next_due_on is None
    # An open alert keeps them in sight until someone acknowledges it.
    factory.assessment(patient, "phq9", total=14, item9=2)
    assert patient.id in rows(staff_client.get("/clinic/patients").data)


def test_a_discharged_patients_crisis_answer_still_opens_its_alert(
        staff_client, patient_client, world, session):
    discharge(staff_client, world.patient)
    answer = patient_client.post("/me/questionnaires/phq9",
                                 data=answers_form([0] * 8 + [2]))
    assert answer.status_code == 302
    session.rollback()
    [alert] = session.scalars(select(Alert).where(Alert.patient_id == world.patient.id))
    assert alert.crisis and alert.is_open
    assert "crisis" in patient_client.get(answer.location).data.decode().lower()


def test_a_discharged_patients_history_is_still_exported(app, world, factory, session):
    admin = factory.staff(world.clinic, "admin")
    client = app.test_client()
    sign_in(client, admin)
    record = factory.assessment(world.patient, "gad7", [2] * 7)
    discharge(client, world.patient)
    scores = as_dicts(post_export(client, kind="scores").data)
    assert str(record.id) in [row["assessment_id"] for row in scores]


def test_no_reminder_is_written_for_a_discharged_patient(app, session, factory, world, mailbox,
                                                         pinned):
    patient = remindable_patient(factory, session, world.clinic, world.clinician)
    with app.app_context():
        patient_admin.discharge(session, Actor(world.clinician), patient, "Moved away")
        session.commit()
    tick(app)
    assert deliveries(session, patient_id=patient.id) == []
    assert mailbox.received == []
    with app.app_context():
        patient_admin.readmit(session, Actor(world.clinician), patient, "Back")
        session.commit()
    pinned.advance(minutes=5)
    tick(app)
    assert len(deliveries(session, patient_id=patient.id)) == 1


def test_the_schedule_asks_nothing_of_a_discharged_patient_from_the_discharge_on():
    every_4_days = [PlanEntry(instrument_key="phq9", schedule="recurring", every_days=4,
                              active=True)]
    # Enrolled Monday 2 March 2026 in New York: check-ins due 6, 10, 14, 18 March.
    under_care = Timeline(enrolled_at=T0, timezone="America/New_York")
    discharged = dataclasses.replace(under_care, discharged_at=T0 + dt.timedelta(days=9))
    now = T0 + dt.timedelta(days=17)
    assert outstanding(every_4_days, under_care, now)
    assert outstanding(every_4_days, discharged, now) == []
    assert due_questionnaires(every_4_days, discharged, now) == []
    assert next_due_on(every_4_days, discharged, now) is None
    # Completion counts only what fell due before the discharge (the 6th and 10th) as asked.
    opened = [asked.occurrence.opens_at.date() for asked in
              asked_between(every_4_days, discharged, T0, now)]
    assert opened == [dt.date(2026, 3, 6), dt.date(2026, 3, 10)]
    assert len(asked_between(every_4_days, under_care, T0, now)) == 4


# -- access -----------------------------------------------------------------------------------

def test_another_clinics_patient_is_404_and_unchanged(staff_client, world, session):
    other = world.other_patient
    assert staff_client.get(details_path(other)).status_code == 404
    for what, data in (("details", details_form(other, display_name="Hijacked")),
                       ("clinician", {"reassign-clinician": str(world.clinician.id),
                                      "reassign-reason": "x"}),
                       ("discharge", {"care-reason": "x"}), ("readmit", {"care-reason": "x"})):
        assert staff_client.post(details_path(other, what), data=data).status_code == 404
    after = fresh(session, other)
    assert (after.display_name, after.discharged_at, after.assigned_clinician_id) == (
        "Pat Example", None, world.other_clinician.id)
    assert len(revisions(session, other)) == 1


def test_patients_get_404(patient_client, world):
    assert patient_client.get(details_path(world.patient)).status_code == 404
    assert patient_client.post(details_path(world.patient, "discharge"),
                               data={"care-reason": "x"}).status_code == 404


def test_the_record_offers_the_access_link_that_applies(staff_client, world, factory):
    invited = factory.patient(world.clinic, world.clinician, with_login=False)
    page = staff_client.get(f"/clinic/patients/{invited.id}").data.decode()
    assert "Create a new invitation link" in page and "password reset" not in page
    page = staff_client.get(f"/clinic/patients/{world.patient.id}").data.decode()
    assert "Issue a password reset link" in page and "new invitation" not in page
    assert staff_client.post(f"/clinic/patients/{world.patient.id}/password-reset",
                             ).status_code == 200


# -- CSRF -------------------------------------------------------------------------------------

SITE = "https://outcomes.test"


@pytest.fixture
def csrf_app(database_url):
    app = create_app({**base_config(database_url), "WTF_CSRF_ENABLED": True})
    yield app
    with app.app_context():
        db.engine.dispose()


def test_each_change_needs_its_forms_csrf_token(csrf_app, world, session):
    """The forms of the details page with CSRF on (test_csrf_forms.py's crawler cannot reach
    re-admission: its clinic has no discharged patient)."""
    client = csrf_app.test_client()
    login = client.get("/login", base_url=SITE).data
    assert client.post("/login", base_url=SITE, headers={"Referer": f"{SITE}/login"}, data={
        "email": world.clinician.email, "password": PASSWORD,
        "csrf_token": csrf_token(login)}).status_code == 302
    page = details_path(world.patient)
    for what, data, changed in (
            ("details", details_form(world.patient, display_name="Pat Exemple"),
             lambda: fresh(session, world.patient).display_name == "Pat Exemple"),
            ("discharge", {"care-reason": "Completed"},
             lambda: fresh(session, world.patient).discharged_at is not None),
            ("readmit", {"care-reason": "Back"},
             lambda: fresh(session, world.patient).discharged_at is None
             and len(revisions(session, world.patient)) == 4)):
        for with_token, status in ((False, 400), (True, 303)):
            html = client.get(page, base_url=SITE).data
            sent = {**data, "csrf_token": csrf_token(html)} if with_token else data
            answer = client.post(details_path(world.patient, what), data=sent, base_url=SITE,
                                 headers={"Referer": f"{SITE}{page}"})
            assert answer.status_code == status, (what, with_token)
        assert changed(), what
