"""One record per staff form: every form that stores a record, sent twice one after the other
and sent several times at once (threads through the real app, on SQLite and PostgreSQL),
stores one record, and every copy after the first answers where the first led; never a 5xx.
Different forms racing for one patient (two courses, two infusions, two plans) get a clear
answer too."""
from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from outcomes import clock
from outcomes.models import (
    AuditEvent,
    Course,
    FormSubmission,
    Infusion,
    InfusionVersion,
    Patient,
)
from outcomes.services import submissions

from .conftest import sign_in
from .helpers import form_key, infusion_form_values, now_local

COPIES = 4
#: How long the first copy holds its claimed key, uncommitted, so the others arrive meanwhile.
HOLD = 0.4


def count(session, statement) -> int:
    return session.scalar(select(func.count()).select_from(statement.subquery()))


@dataclass
class StaffForm:
    """One keyed staff form: its page, what it sends, what it stores, where it leads."""

    path: str
    data: dict[str, object]
    #: How many of the records this form stores exist now.
    stored: Callable[[], int]
    #: Where the first copy's answer leads (None: it answers with a page, the invitation).
    location: str | None


def staff_form(kind: str, world, factory) -> StaffForm:
    session = factory.session
    patient = f"/clinic/patients/{world.patient.id}"
    record = f"{patient}#course"
    if kind == "course.start":
        return StaffForm(f"{patient}/courses/new",
                         {"indication": "ptsd", "planned_infusions": "6",
                          "start_date": now_local().date().isoformat()},
                         lambda: count(session, select(Course)), record)
    if kind == "patient.enrol":
        return StaffForm("/clinic/patients/new",
                         {"identifier": "MRN-DOUBLE", "display_name": "Robin Example",
                          "assigned_clinician": str(world.clinician.id)},
                         lambda: count(session, select(Patient).where(
                             Patient.identifier == "MRN-DOUBLE")), None)
    if kind == "plan.update":
        data = {"phq9__recurring": "y", "phq9__every": "14", "phq9__follow_up": "12",
                "phq9__then_every": "28"}
        for key in ("pcl5", "gad7", "pcl5-weekly", "after-infusion"):
            data.update({f"{key}__every": "7", f"{key}__follow_up": "12",
                         f"{key}__then_every": "28"})
        return StaffForm(f"{patient}/plan", data, lambda: count(session, select(
            AuditEvent).where(AuditEvent.action == "plan.update")), patient)
    course = factory.course(world.patient)
    if kind == "course.update":
        return StaffForm(f"{patient}/courses/{course.id}",
                         {"status": "active", "planned_infusions": "8"},
                         lambda: count(session, select(AuditEvent).where(
                             AuditEvent.action == "course.update")), record)
    if kind == "infusion.record":
        return StaffForm(f"{patient}/courses/{course.id}/infusions/new", infusion_form_values(),
                         lambda: count(session, select(Infusion)), record)
    infusion = factory.infusion(course, clock.utcnow() - dt.timedelta(hours=3))
    path = f"{patient}/infusions/{infusion.id}"
    return StaffForm(path, infusion_form_values(systolic_before="124", corrects_version="1",
                                           correction_reason="Misread the monitor"),
                     lambda: count(session, select(InfusionVersion)) - 1, path)


KINDS = list(submissions.KINDS)





def assert_first_answer(form: StaffForm, response) -> None:
    if form.location is None:
        assert response.status_code == 200 and b"QR code of the link" in response.data
    else:
        assert response.status_code == 302 and response.location == form.location


@pytest.mark.parametrize("kind", KINDS)
def test_a_form_sent_twice_stores_once_and_the_second_answer_leads_where_the_first_did(
        app, client, world, factory, session, kind):
    form = staff_form(kind, world, factory)
    sign_in(client, world.clinician)
    data = {**form.data, "submission_key": form_key(client, form.path)}
    first = client.post(form.path, data=data)
    assert_first_answer(form, first)
    second = client.post(form.path, data=data)
    assert second.status_code == 302
    if form.location is not None:
        assert second.location == form.location
    else:
        patient = session.scalar(select(Patient).where(Patient.identifier == "MRN-DOUBLE"))
        assert second.location == f"/clinic/patients/{patient.id}"
    assert form.stored() == 1
    assert count(session, select(FormSubmission).where(FormSubmission.kind == kind)) == 1
    followed = client.get(second.location).data.decode()
    assert "saved once" in followed or "added by the first copy" in followed


@pytest.fixture
def slow_claims(monkeypatch):
    """Every claim holds its key, uncommitted, for HOLD seconds; returns when each copy
    began claiming."""
    entered: list[float] = []
    claim = submissions.claim

    def holding_claim(*args, **kwargs):
        entered.append(time.monotonic())
        claimed = claim(*args, **kwargs)
        time.sleep(HOLD)
        return claimed

    monkeypatch.setattr(submissions, "claim", holding_claim)
    return entered


def send_at_once(app, world, path: str, payloads: list[dict[str, object]]) -> list:
    """Each payload from a client of its own, signed in as the clinician, all released at
    once; the responses in payload order."""
    clients = [app.test_client() for _ in payloads]
    for client in clients:
        sign_in(client, world.clinician)
    barrier = threading.Barrier(len(payloads))
    responses: list = [None] * len(payloads)
    failures: list[BaseException] = []

    def send(index: int) -> None:
        try:
            barrier.wait()
            responses[index] = clients[index].post(path, data=payloads[index])
        except BaseException as error:  # reported by the test, not lost in the thread
            failures.append(error)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(payloads))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures
    return responses


@pytest.mark.parametrize("kind", KINDS)
def test_a_form_sent_several_times_at_once_stores_once_and_never_fails(
        app, client, world, factory, session, database_url, slow_claims, kind):
    form = staff_form(kind, world, factory)
    sign_in(client, world.clinician)
    data = {**form.data, "submission_key": form_key(client, form.path)}
    slow_claims.clear()  # only the copies' claims count, not the setup's
    responses = send_at_once(app, world, form.path, [data] * COPIES)
    assert [r.status_code for r in responses if r.status_code >= 500] == []
    assert form.stored() == 1
    assert count(session, select(FormSubmission).where(FormSubmission.kind == kind)) == 1
    firsts = [r for r in responses
              if form.location is None and r.status_code == 200 or
              form.location is not None and r.location == form.location]
    if form.location is None:
        assert len(firsts) == 1
        patient = session.scalar(select(Patient).where(Patient.identifier == "MRN-DOUBLE"))
        assert all(r.status_code == 302 and r.location == f"/clinic/patients/{patient.id}"
                   for r in responses if r not in firsts)
    else:
        assert len(firsts) == COPIES
    if database_url.startswith("postgresql"):
        # The copies really raced: each began claiming while the first held the key.
        assert max(slow_claims) - min(slow_claims) < HOLD


def test_a_copy_with_other_values_changes_nothing_and_says_so(app, client, world, factory,
                                                             session):
    form = staff_form("infusion.record", world, factory)
    sign_in(client, world.clinician)
    key = form_key(client, form.path)
    assert client.post(form.path, data={**form.data, "submission_key": key}).status_code == 302
    changed = client.post(form.path, data={**form.data, "weight_kg": "90",
                                           "total_dose_mg": "45", "submission_key": key})
    assert changed.status_code == 302 and changed.location == form.location
    assert "changes in the copy sent again were not saved" in client.get(
        changed.location).data.decode()
    assert [v.weight_kg for v in session.scalars(select(InfusionVersion))] == [80.0]


def test_a_refused_form_leaves_its_key_free_for_the_corrected_one(app, client, world,
                                                                  factory, session):
    form = staff_form("infusion.record", world, factory)
    sign_in(client, world.clinician)
    key = form_key(client, form.path)
    refused = client.post(form.path, data={**form.data, "spo2_after": "30",
                                           "submission_key": key})
    assert refused.status_code == 422
    assert count(session, select(FormSubmission)) == 0
    assert client.post(form.path, data={**form.data, "submission_key": key}).status_code == 302
    assert form.stored() == 1


@pytest.mark.parametrize("kind", KINDS)
def test_a_form_without_its_key_is_refused_and_stores_nothing(app, client, world, factory,
                                                              session, kind):
    form = staff_form(kind, world, factory)
    sign_in(client, world.clinician)
    response = client.post(form.path, data=form.data)
    assert response.status_code == 422 and b"missing its submission key" in response.data
    assert form.stored() == 0


def test_one_users_key_is_not_anothers(app, factory, world, session):
    """Keys are hashed with the user: a colleague sending a form with the same key (a
    guessed or copied one) stores their own record."""
    form = staff_form("course.start", world, factory)
    colleague = factory.staff(world.clinic)
    first, second = app.test_client(), app.test_client()
    sign_in(first, world.clinician)
    sign_in(second, colleague)
    key = uuid.uuid4().hex
    assert first.post(form.path, data={**form.data, "submission_key": key}).status_code == 302
    again = second.post(form.path, data={**form.data, "submission_key": key})
    assert again.status_code == 422 and b"already has an open course" in again.data
    assert form.stored() == 1


# --- Different forms racing for one patient ---------------------------------------------

def fresh_keys(data: dict[str, object], copies: int) -> list[dict[str, object]]:
    return [{**data, "submission_key": uuid.uuid4().hex} for _ in range(copies)]


def test_ten_course_forms_at_once_open_one_course_and_the_rest_are_told_why(
        app, world, factory, session):
    form = staff_form("course.start", world, factory)
    responses = send_at_once(app, world, form.path, fresh_keys(form.data, 10))
    assert sorted(r.status_code for r in responses) == [302] + [422] * 9
    assert all(b"already has an open course" in r.data for r in responses
               if r.status_code == 422)
    assert form.stored() == 1


def test_two_infusion_forms_at_once_are_numbered_one_after_the_other(app, world, factory,
                                                                     session):
    form = staff_form("infusion.record", world, factory)
    responses = send_at_once(app, world, form.path, fresh_keys(form.data, 2))
    assert [r.status_code for r in responses] == [302, 302]
    assert sorted(session.scalars(select(Infusion.number))) == [1, 2]


def test_two_corrections_of_one_version_at_once_store_one_and_the_other_is_told(
        app, world, factory, session):
    form = staff_form("infusion.correct", world, factory)
    other = {**form.data, "systolic_before": "130"}
    responses = send_at_once(app, world, form.path,
                             fresh_keys(form.data, 1) + fresh_keys(other, 1))
    assert sorted(r.status_code for r in responses) == [302, 422]
    refused = next(r for r in responses if r.status_code == 422)
    assert b"was corrected by someone else while this form was open" in refused.data
    assert sorted(session.scalars(select(InfusionVersion.version))) == [1, 2]


def test_a_correction_made_from_an_old_version_is_refused(app, client, world, factory, session):
    form = staff_form("infusion.correct", world, factory)
    sign_in(client, world.clinician)
    page = client.get(form.path).data.decode()
    assert 'name="corrects_version" type="hidden" value="1"' in page
    first = {**form.data, "submission_key": form_key(client, form.path)}
    assert client.post(form.path, data=first).status_code == 302
    stale = {**form.data, "systolic_before": "130", "submission_key": uuid.uuid4().hex}
    response = client.post(form.path, data=stale)
    assert response.status_code == 422 and b"now at version 2" in response.data
    assert [v.systolic_before for v in session.scalars(
        select(InfusionVersion).order_by(InfusionVersion.version))] == [122, 124]


def test_two_plan_changes_at_once_are_made_one_after_the_other(app, world, factory, session):
    form = staff_form("plan.update", world, factory)
    other = {**form.data, "gad7__recurring": "y", "gad7__every": "28"}
    responses = send_at_once(app, world, form.path,
                             fresh_keys(form.data, 1) + fresh_keys(other, 1))
    assert [r.status_code for r in responses] == [302, 302]
    events = session.scalars(select(AuditEvent).where(AuditEvent.action == "plan.update")
                             .order_by(AuditEvent.id)).all()
    assert len(events) == 2
    # Each change was audited against the plan the other one left.
    assert events[1].old_values == events[0].new_values


def test_reopening_a_finished_course_while_another_is_open_is_refused(client, world, factory,
                                                                      session):
    first = factory.course(world.patient)
    sign_in(client, world.clinician)
    base = f"/clinic/patients/{world.patient.id}/courses"
    finish = {"status": "stopped", "planned_infusions": "6"}
    assert client.post(f"{base}/{first.id}", data={
        **finish, "submission_key": form_key(client, f"{base}/{first.id}")}).status_code == 302
    assert client.post(f"{base}/new", data={
        "indication": "ptsd", "planned_infusions": "6",
        "start_date": now_local().date().isoformat(),
        "submission_key": form_key(client, f"{base}/new")}).status_code == 302
    reopen = client.post(f"{base}/{first.id}", data={
        "status": "active", "planned_infusions": "6",
        "submission_key": form_key(client, f"{base}/{first.id}")})
    assert reopen.status_code == 422 and b"already has an open course" in reopen.data
    assert count(session, select(Course).where(Course.status.in_(("planned", "active")))) == 1
