"""A patient who added an extra sign-in step (issue 12: patients may add a factor) and lost it
with their recovery codes is not locked out for good: their care team removes it from the
patient's record, after confirming it is them, and both are told."""
from __future__ import annotations

from sqlalchemy import func, select

from outcomes.models import AuditEvent, Delivery, PasskeyCredential, RecoveryCode, User

from .conftest import PASSWORD, base_config, csrf_token, sign_in
from .helpers import enrol_authenticator, give_password, running_app


def reset_path(patient_id: int) -> str:
    return f"/clinic/patients/{patient_id}/sign-in-steps/reset"


def test_the_care_team_removes_a_patients_lost_extra_step(app, client, world, session):
    enrol_authenticator(app, session, world.patient_user)
    assert give_password(app.test_client(), world.patient_user) == "/login/code"
    sign_in(client, world.clinician)
    record = client.get(f"/clinic/patients/{world.patient.id}").data.decode()
    assert "Remove the extra sign-in step" in record

    # Only after confirming it is them.
    asked = client.post(reset_path(world.patient.id),
                        headers={"Referer": f"http://localhost/clinic/patients/{world.patient.id}"})
    assert asked.status_code == 302 and "/account/security/confirm" in asked.location
    assert client.post("/account/security/confirm",
                       data={"secret": PASSWORD}).status_code == 302
    done = client.post(reset_path(world.patient.id))
    assert done.status_code == 302
    assert done.location == f"/clinic/patients/{world.patient.id}#access-title"

    session.rollback()
    session.expire_all()
    patient = session.get(User, world.patient_user.id)
    assert (patient.totp_secret, patient.mfa_enrolled_at) == (None, None)
    for kind in (RecoveryCode, PasskeyCredential):
        assert session.scalar(select(func.count()).select_from(kind).where(
            kind.user_id == patient.id)) == 0
    # They sign in with their password again; both are told.
    assert give_password(app.test_client(), world.patient_user) == "/me/"
    told = session.execute(select(Delivery.user_id).where(
        Delivery.account_notice == "factors_reset")).scalars().all()
    assert sorted(told) == sorted([world.patient_user.id, world.clinician.id])
    event = session.scalars(select(AuditEvent).where(
        AuditEvent.action == "mfa.factors_reset")).one()
    assert (event.actor_id, event.object_id) == (world.clinician.id, str(patient.id))
    assert "Remove the extra sign-in step" not in \
        client.get(f"/clinic/patients/{world.patient.id}").data.decode()


def test_another_clinics_patient_is_not_found_and_nothing_changes(app, client, world, session):
    enrol_authenticator(app, session, world.other_patient.user)
    sign_in(client, world.clinician)
    client.post("/account/security/confirm", data={"secret": PASSWORD})
    assert client.post(reset_path(world.other_patient.id)).status_code == 404
    assert client.post(reset_path(999_999)).status_code == 404
    session.rollback()
    session.expire_all()
    assert session.get(User, world.other_patient.user.id).mfa_enrolled_at is not None
    assert session.scalar(select(func.count()).select_from(Delivery).where(
        Delivery.account_notice == "factors_reset")) == 0


def test_a_patient_without_an_extra_step_is_left_as_they_are(app, client, world, session):
    sign_in(client, world.clinician)
    assert "Remove the extra sign-in step" not in \
        client.get(f"/clinic/patients/{world.patient.id}").data.decode()
    client.post("/account/security/confirm", data={"secret": PASSWORD})
    assert client.post(reset_path(world.patient.id)).status_code == 302
    session.rollback()
    assert session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "mfa.factors_reset")) == 0


def test_the_reset_refuses_a_missing_csrf_token(database_url, world, session):
    """test_csrf_forms.py's crawler meets no patient with an extra step: refused without the
    token here, taken with it."""
    with running_app({**base_config(database_url), "WTF_CSRF_ENABLED": True}) as app:
        enrol_authenticator(app, session, world.patient_user)
        client = app.test_client()
        page = f"/clinic/patients/{world.patient.id}"
        client.post("/login", data={"email": world.clinician.email, "password": PASSWORD,
                                    "csrf_token": csrf_token(client.get("/login").data)})
        client.post("/account/security/confirm", data={
            "secret": PASSWORD,
            "csrf_token": csrf_token(client.get("/account/security/confirm").data)})
        assert client.post(reset_path(world.patient.id)).status_code == 400
        assert client.post(reset_path(world.patient.id), data={
            "csrf_token": csrf_token(client.get(page).data)}).status_code == 302
        session.rollback()
        session.expire_all()
        assert session.get(User, world.patient_user.id).mfa_enrolled_at is None
