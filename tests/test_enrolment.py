"""Enrolling a patient and the one-time invitation link."""
from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest

from sqlalchemy import func, select

from outcomes.models import Invitation, Patient, PlanEntry, User
from outcomes.services import enrolment, tokens
from outcomes.services.audit import Actor

from .conftest import PASSWORD, sign_in


def enrol_through_the_page(client, identifier="MRN-42", name="Robin Example", email=""):
    response = client.post("/clinic/patients/new", data={"submission_key": uuid.uuid4().hex,
        "identifier": identifier, "display_name": name, "contact_email": email,
        "assigned_clinician": "1"})
    return response


def invitation_link(html: bytes) -> str:
    """The token of the page's invitation link, which carries it after '#' (never sent)."""
    match = re.search(rb'href="http://localhost/invite#([A-Za-z0-9_-]+)"', html)
    assert match, "no invitation link on the page"
    return match.group(1).decode()


def open_link(client, token: str):
    """What the link's page does: post the token from the fragment."""
    return client.post("/invite", data={"token": token})


def accept_link(client, token: str, **fields: str):
    return client.post("/invite/accept", data={"token": token, **fields})


def test_clinician_enrols_a_patient_and_gets_a_link_and_qr_code(client, world, session):
    sign_in(client, world.clinician)
    response = client.post("/clinic/patients/new", data={"submission_key": uuid.uuid4().hex,
        "identifier": "MRN-42", "display_name": "Robin Example", "contact_email": "",
        "assigned_clinician": str(world.clinician.id)})
    assert response.status_code == 200
    assert b"<svg" in response.data and b"QR code of the link" in response.data
    link = invitation_link(response.data)
    patient = session.scalar(select(Patient).where(Patient.identifier == "MRN-42"))
    assert patient.clinic_id == world.clinic.id
    assert patient.assigned_clinician_id == world.clinician.id
    plan = {(entry.instrument_key, entry.schedule): entry.every_days for entry in
            session.scalars(select(PlanEntry).where(PlanEntry.patient_id == patient.id))}
    assert plan == {("pcl5", "baseline"): None, ("phq9", "baseline"): None,
                    ("gad7", "baseline"): None, ("phq9", "before_infusion"): None,
                    ("after-infusion", "after_infusion"): None, ("pcl5-weekly", "recurring"): 7,
                    ("phq9", "recurring"): 7}
    invitation = session.scalar(select(Invitation).where(Invitation.patient_id == patient.id))
    token = link
    assert invitation.token_hash == tokens.token_hash(token)
    assert token not in invitation.token_hash  # only the hash is stored
    assert dt.timedelta(days=6, hours=23) < invitation.expires_at - invitation.created_at <= dt.timedelta(days=7)


def test_enrolment_refuses_a_duplicate_identifier_and_stores_nothing(client, world, session):
    sign_in(client, world.clinician)
    response = client.post("/clinic/patients/new", data={"submission_key": uuid.uuid4().hex,
        "identifier": world.patient.identifier, "display_name": "Someone Else",
        "assigned_clinician": str(world.clinician.id)})
    assert response.status_code == 422
    assert b"already enrolled" in response.data
    count = session.scalar(select(func.count(Patient.id)).where(
        Patient.identifier == world.patient.identifier))
    assert count == 1


def test_enrolment_refuses_a_clinician_of_another_clinic(client, world):
    sign_in(client, world.clinician)
    response = client.post("/clinic/patients/new", data={"submission_key": uuid.uuid4().hex,
        "identifier": "MRN-77", "display_name": "Robin Example",
        "assigned_clinician": str(world.other_clinician.id)})
    assert response.status_code == 422


def test_the_link_works_once_then_stops(app, client, world, session):
    sign_in(client, world.clinician)
    link = invitation_link(client.post("/clinic/patients/new", data={"submission_key": uuid.uuid4().hex,
        "identifier": "MRN-42", "display_name": "Robin Example", "contact_email": "robin@example.org",
        "assigned_clinician": str(world.clinician.id)}).data)
    phone = app.test_client()
    page = open_link(phone, link)
    assert page.status_code == 200
    assert b'value="robin@example.org"' in page.data
    response = accept_link(phone, link, email="robin@example.org", password=PASSWORD,
                           confirm=PASSWORD)
    assert response.status_code == 302 and response.location == "/me/"
    assert phone.get("/me/").status_code == 200
    assert open_link(app.test_client(), link).status_code == 404
    assert accept_link(app.test_client(), link, email="x@example.org", password=PASSWORD,
                       confirm=PASSWORD).status_code == 404
    user = session.scalar(select(User).where(User.email == "robin@example.org"))
    assert user.role == "patient" and user.patient.identifier == "MRN-42"


def test_mismatched_passwords_store_nothing(app, client, world, session):
    sign_in(client, world.clinician)
    link = invitation_link(enrol_through_the_page(client).data)
    phone = app.test_client()
    response = accept_link(phone, link, email="robin@example.org", password=PASSWORD,
                           confirm=PASSWORD + "x")
    assert response.status_code == 422
    assert b"do not match" in response.data
    assert session.scalar(select(User).where(User.email == "robin@example.org")) is None
    assert open_link(phone, link).status_code == 200  # still usable


def test_an_email_already_in_use_is_refused(app, client, world):
    sign_in(client, world.clinician)
    link = invitation_link(enrol_through_the_page(client).data)
    response = accept_link(app.test_client(), link, email=world.clinician.email,
                           password=PASSWORD, confirm=PASSWORD)
    assert response.status_code == 422
    assert b"already exists" in response.data


def test_reissuing_a_link_kills_the_old_one(app, client, world, session):
    sign_in(client, world.clinician)
    first = invitation_link(enrol_through_the_page(client).data)
    patient = session.scalar(select(Patient).where(Patient.identifier == "MRN-42"))
    second = invitation_link(client.post(f"/clinic/patients/{patient.id}/invitation").data)
    assert first != second
    assert open_link(app.test_client(), first).status_code == 404
    assert open_link(app.test_client(), second).status_code == 200


def test_an_expired_link_stops_working(app, world, session):
    with app.app_context():
        issued = enrolment.issue_invitation(session, Actor(world.clinician),
                                            _new_patient(session, world))
        session.commit()
    invitation = session.get(Invitation, issued.invitation.id)
    with app.app_context():
        assert enrolment.usable_invitation(session, issued.token) is not None
    session.execute(Invitation.__table__.update().where(Invitation.id == invitation.id).values(
        created_at=invitation.created_at - dt.timedelta(days=8),
        expires_at=invitation.expires_at - dt.timedelta(days=7, seconds=1)))
    session.commit()
    assert open_link(app.test_client(), issued.token).status_code == 404


def test_a_made_up_token_shows_the_same_page_as_a_used_one(client):
    response = open_link(client, "A" * 43)
    assert response.status_code == 404
    assert b"This link no longer works" in response.data


def test_a_link_with_the_token_in_its_path_is_not_honoured(app, world, session):
    """Links of the old form put the token where access logs keep it."""
    with app.app_context():
        issued = enrolment.issue_invitation(session, Actor(world.clinician),
                                            _new_patient(session, world))
        session.commit()
    response = app.test_client().get(f"/invite/{issued.token}")
    assert response.status_code == 404
    assert b"This link no longer works" in response.data


def test_the_invitation_page_posts_the_token_from_the_fragment(client):
    page = client.get("/invite").data.decode()
    assert 'id="open-invitation"' in page and 'action="/invite"' in page
    assert "js/link_token.js" in page and 'data-form="open-invitation" data-post' in page
    assert '<label for="token">' in page  # without script, the code can be typed in


def test_an_empty_code_is_refused_with_a_message(client):
    response = open_link(client, "  ")
    assert response.status_code == 422
    assert b"Enter the code from your invitation link." in response.data


def test_a_patient_with_an_account_gets_no_new_link(client, world):
    sign_in(client, world.clinician)
    response = client.post(f"/clinic/patients/{world.patient.id}/invitation")
    assert response.status_code == 302
    assert b"already set up" in client.get(response.location).data


def _new_patient(session, world):
    clinician = session.get(User, world.clinician.id)
    return enrolment.enrol_patient(session, Actor(clinician), clinician.clinic, "MRN-900",
                                   "Kai Example", None, clinician)


def test_links_use_the_public_address_not_the_requests_host(database_url, world):
    from outcomes import create_app

    from .conftest import base_config

    app = create_app({**base_config(database_url),
                      "PUBLIC_BASE_URL": "https://outcomes.example.org"})
    client = app.test_client()
    client.environ_base["HTTP_HOST"] = "evil.example.net"
    sign_in(client, world.clinician)
    page = client.post("/clinic/patients/new", data={"submission_key": uuid.uuid4().hex,
        "identifier": "MRN-42", "display_name": "Robin Example",
        "assigned_clinician": str(world.clinician.id)}).data.decode()
    assert 'href="https://outcomes.example.org/invite#' in page
    assert "evil.example.net" not in page


def test_an_invitation_already_claimed_cannot_be_claimed_again(app, world, session, monkeypatch):
    """Two acceptances racing: the second finds the invitation claimed by its conditional
    update, even though it passed the first check."""
    from outcomes.extensions import db

    with app.app_context():
        live = db.session  # the app's own transactional session, as a request has
        patient = _new_patient(live, world)
        issued = enrolment.issue_invitation(live, Actor(world.clinician), patient)
        enrolment.accept_invitation(live, Actor(None), issued.token, "first@example.org",
                                    PASSWORD)
        live.commit()
        invitation = live.get(Invitation, issued.invitation.id)
        monkeypatch.setattr(enrolment, "usable_invitation", lambda *args: invitation)
        with pytest.raises(enrolment.EnrolmentError, match="no longer valid"):
            enrolment.accept_invitation(live, Actor(None), issued.token,
                                        "second@example.org", PASSWORD)
        live.rollback()
    assert session.scalar(select(User).where(User.email == "second@example.org")) is None
    assert session.scalar(select(User).where(User.email == "first@example.org")) is not None


def test_opening_an_invitation_does_not_sign_out_whoever_is_signed_in(app, client, world):
    sign_in(client, world.clinician)
    link = invitation_link(enrol_through_the_page(client).data)
    page = open_link(client, link).data.decode()
    assert "is signed in on this device" in page
    assert client.get("/clinic/patients").status_code == 200
