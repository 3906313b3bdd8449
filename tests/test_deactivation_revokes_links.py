"""Deactivating a staff account (services/staff.set_active) also stops the links it issued
and that are still open: the password resets it issued from patients' pages and the staff
invitations it created. Whoever left may keep a copy of a link or its QR code, and a link
works for anyone who holds it. Used links stay used, other people's stay open, and the
deactivation's audit row says how many were stopped. SQLite and PostgreSQL."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from outcomes.models import AuditEvent, PasswordReset, StaffInvitation, utcnow
from outcomes.services import password_resets, staff
from outcomes.services.audit import Actor

from .conftest import sign_in

RESET_LIFETIME = dt.timedelta(hours=1)


def test_deactivating_an_account_revokes_the_links_it_issued(app, session, factory, world):
    clinic = world.clinic
    admin, leaving = factory.staff(clinic, "admin"), factory.staff(clinic, "admin")
    used_patient = factory.patient(clinic, world.clinician).user
    others_patient = factory.patient(clinic, world.clinician).user
    with app.app_context():
        reset = password_resets.issue_reset(session, world.patient_user,
                                            valid_for=RESET_LIFETIME, issued_by=leaving)
        used = password_resets.issue_reset(session, used_patient, valid_for=RESET_LIFETIME,
                                           issued_by=leaving)
        others_reset = password_resets.issue_reset(session, others_patient,
                                                   valid_for=RESET_LIFETIME, issued_by=admin)
        invitation = staff.invite_staff(session, Actor(leaving), "new@example.org",
                                        "clinician").invitation
        others_invitation = staff.invite_staff(session, Actor(admin), "other@example.org",
                                               "admin").invitation
        session.get(PasswordReset, used.reset_id).used_at = utcnow()
        session.commit()
        ids = (reset.reset_id, used.reset_id, others_reset.reset_id, invitation.id,
               others_invitation.id)

    client = app.test_client()
    sign_in(client, admin)
    assert client.post("/clinic/staff/active",
                       data={"user_id": leaving.id, "active": "off"}).status_code == 303

    session.rollback()
    session.expire_all()
    resets = [session.get(PasswordReset, row_id) for row_id in ids[:3]]
    invitations = [session.get(StaffInvitation, row_id) for row_id in ids[3:]]
    assert [row.revoked_at is not None for row in resets + invitations] == \
        [True, False, False, True, False]
    assert resets[1].used_at is not None
    [deactivated] = session.scalars(select(AuditEvent).where(
        AuditEvent.action == "staff.deactivate")).all()
    assert deactivated.details == {"password_resets_revoked": 1,
                                   "staff_invitations_revoked": 1}
