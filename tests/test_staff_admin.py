"""Staff administration in the browser (issue 12 item 4): an admin invites a clinician or admin
by a one-time link, changes roles, deactivates and reactivates accounts; a clinic always
keeps one active admin; deactivating ends the account's open sessions at once. Admins only
(404 for clinicians), never across clinics, every change audited. SQLite and PostgreSQL."""
from __future__ import annotations

import hashlib
import re

import pytest
from sqlalchemy import func, select

from outcomes.models import AuditEvent, StaffInvitation, User, UserSession
from outcomes.services import staff
from outcomes.services.audit import Actor

from .concurrency import at_once, skip_unless_postgresql
from .conftest import PASSWORD, base_config, csrf_token, sign_in
from .helpers import T0, running_app
from .notification_world import PinnedClock

NEW_PASSWORD = "a staff password of some length"


@pytest.fixture
def admin(factory, world) -> User:
    return factory.staff(world.clinic, "admin")


@pytest.fixture
def admin_client(app, admin):
    client = app.test_client()
    sign_in(client, admin)
    return client


def invite(client, email="new.colleague@example.org", role="clinician") -> tuple[str, bytes]:
    """Post the invitation form; the token from the link the page shows, and the page."""
    page = client.post("/clinic/staff/invite", data={"email": email, "role": role})
    assert page.status_code == 200, page.data[:300]
    match = re.search(rb'href="[^"]*/join#([A-Za-z0-9_-]+)"', page.data)
    assert match, "no link on the page"
    return match.group(1).decode(), page.data


def issue(app, session, admin: User, email: str) -> staff.IssuedStaffInvitation:
    with app.app_context():
        issued = staff.invite_staff(session, Actor(admin), email, "clinician")
        session.commit()
    return issued


def accept(client, token, password=NEW_PASSWORD, confirm=None):
    return client.post("/join/accept", data={"token": token, "password": password,
                                             "confirm": confirm or password})


def actions(session, action: str) -> list[AuditEvent]:
    session.rollback()
    return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                .order_by(AuditEvent.id)))


def fresh(session, user: User) -> User:
    session.rollback()
    session.expire_all()
    return session.get(User, user.id)


# -- the page -------------------------------------------------------------------------------

def test_the_staff_page_lists_each_colleague_with_role_state_and_second_factor(
        admin_client, world, admin, factory):
    elsewhere = world.other_clinician
    page = admin_client.get("/clinic/staff")
    assert page.status_code == 200
    for member in (world.clinician, admin):
        assert member.email.encode() in page.data
    assert elsewhere.email.encode() not in page.data
    assert world.patient_user.email.encode() not in page.data
    assert b"Not enrolled" in page.data and b"Active" in page.data


def test_clinicians_get_404_for_every_staff_route(app, world, admin, session):
    client = app.test_client()
    sign_in(client, world.clinician)
    assert client.get("/clinic/staff").status_code == 404
    for path, data in (("/clinic/staff/invite", {"email": "x@example.org", "role": "admin"}),
                       ("/clinic/staff/role", {"user_id": world.clinician.id, "role": "admin"}),
                       ("/clinic/staff/active", {"user_id": admin.id, "active": "off"}),
                       ("/clinic/staff/end-sessions", {"user_id": admin.id})):
        assert client.post(path, data=data).status_code == 404
    assert fresh(session, world.clinician).role == "clinician"
    assert fresh(session, admin).active
    assert session.scalar(select(func.count()).select_from(StaffInvitation)) == 0


def test_another_clinics_staff_and_invitations_are_404_and_unchanged(
        app, admin_client, world, factory, session):
    other_admin = factory.staff(world.other_clinic, "admin")
    with app.app_context():
        theirs = staff.invite_staff(session, Actor(other_admin), "theirs@example.org",
                                    "clinician")
        session.commit()
    for path, data in (
            ("/clinic/staff/role", {"user_id": world.other_clinician.id, "role": "admin"}),
            ("/clinic/staff/active", {"user_id": world.other_clinician.id, "active": "off"}),
            ("/clinic/staff/role", {"user_id": world.patient_user.id, "role": "admin"}),
            ("/clinic/staff/role", {"user_id": 999_999, "role": "admin"}),
            ("/clinic/staff/invitations/revoke", {"invitation_id": theirs.invitation.id})):
        assert admin_client.post(path, data=data).status_code == 404, path
    assert fresh(session, world.other_clinician).role == "clinician"
    assert fresh(session, world.other_clinician).active
    assert fresh(session, world.patient_user).role == "patient"
    assert session.get(StaffInvitation, theirs.invitation.id).revoked_at is None


# -- invitations ----------------------------------------------------------------------------

def test_an_invitation_makes_an_account_of_its_role_once(app, admin_client, world, session):
    token, page = invite(admin_client, "New.Colleague@Example.org", "admin")
    assert b"<svg" in page, "the QR code"
    invitation = session.scalars(select(StaffInvitation)).one()
    # Only the token's hash is kept.
    assert invitation.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str([getattr(invitation, column.key)
                             for column in StaffInvitation.__table__.columns])
    assert invitation.email == "new.colleague@example.org" and invitation.role == "admin"

    invitee = app.test_client()
    opened = invitee.post("/join", data={"token": token})
    assert opened.status_code == 200 and b"new.colleague@example.org" in opened.data
    assert invitee.get("/join").status_code == 200  # the page whose script posts the token
    signed_in = accept(invitee, token)
    assert signed_in.status_code == 302
    user = session.scalars(select(User).where(User.email == "new.colleague@example.org")).one()
    assert (user.role, user.clinic_id, user.active) == ("admin", world.clinic.id, True)
    assert invitee.get("/clinic/patients").status_code == 200, "the invitee is signed in"
    # The link works once; the new password signs in.
    assert accept(app.test_client(), token).status_code == 404
    assert app.test_client().post("/join", data={"token": token}).status_code == 404
    assert app.test_client().post("/login", data={"email": user.email,
                                                  "password": NEW_PASSWORD}).status_code == 302
    accepted = actions(session, "staff_invitation.accept")
    assert len(accepted) == 1 and accepted[0].actor_id == user.id
    assert accepted[0].new_values == {"user_id": user.id, "role": "admin"}


def test_a_used_expired_revoked_or_made_up_link_shows_one_clear_page(
        app, admin, session, monkeypatch):
    pinned = PinnedClock(monkeypatch, T0)
    expired = issue(app, session, admin, "late@example.org")
    revoked = issue(app, session, admin, "revoked@example.org")
    used = issue(app, session, admin, "used@example.org")
    assert accept(app.test_client(), used.token).status_code == 302
    pinned.advance(seconds=staff.STAFF_INVITATION_LIFETIME.total_seconds() - 1)
    assert app.test_client().post("/join", data={"token": expired.token}).status_code == 200
    pinned.advance(seconds=1)
    admin_client = app.test_client()
    sign_in(admin_client, admin)
    assert b"Expired" in admin_client.get("/clinic/staff").data
    assert admin_client.post("/clinic/staff/invitations/revoke", data={
        "invitation_id": revoked.invitation.id}).status_code == 303
    pages = []
    for token in (expired.token, revoked.token, used.token, "a-made-up-token"):
        for answer in (app.test_client().post("/join", data={"token": token}),
                       accept(app.test_client(), token)):
            assert answer.status_code == 404
            assert b"This link no longer works" in answer.data
            pages.append(answer.data)
    assert len(set(pages)) == 1
    assert session.scalar(select(func.count()).select_from(User).where(
        User.email.in_(["late@example.org", "revoked@example.org"]))) == 0
    assert len(actions(session, "staff_invitation.revoke")) == 1


def test_two_acceptances_at_once_make_one_account(app, admin_client, session, database_url):
    skip_unless_postgresql(database_url)
    token, _ = invite(admin_client)
    clients = [app.test_client() for _ in range(2)]
    statuses = at_once(*[lambda client=client: accept(client, token).status_code
                         for client in clients])
    assert sorted(statuses) == [302, 404]
    assert session.scalar(select(func.count()).select_from(User).where(
        User.email == "new.colleague@example.org")) == 1
    assert len(actions(session, "staff_invitation.accept")) == 1


def test_inviting_an_address_again_stops_the_earlier_link(app, admin_client, session):
    first, _ = invite(admin_client, "twice@example.org", "clinician")
    second, _ = invite(admin_client, "twice@example.org", "admin")
    assert accept(app.test_client(), first).status_code == 404
    assert accept(app.test_client(), second).status_code == 302
    assert session.scalars(select(User.role).where(User.email == "twice@example.org")).one() \
        == "admin"
    issued = actions(session, "staff_invitation.issue")
    assert issued[1].details == {"replaces": [int(issued[0].object_id)]}


def test_an_address_with_an_account_is_refused_with_a_clear_message(
        admin_client, world, session):
    for email in (world.clinician.email, world.patient_user.email, world.other_clinician.email):
        page = admin_client.post("/clinic/staff/invite", data={"email": email,
                                                               "role": "clinician"})
        assert page.status_code == 422
        assert b"An account with this email address already exists." in page.data
    assert session.scalar(select(func.count()).select_from(StaffInvitation)) == 0


@pytest.mark.parametrize(("data", "message"), [
    ({"email": "", "role": "clinician"}, b"Give the email address to invite."),
    ({"email": "not an address", "role": "clinician"}, b"is not a valid email address"),
    ({"email": "ok@example.org", "role": "patient"}, b"Not a valid choice"),
])
def test_bad_invitation_input_gets_a_message_and_changes_nothing(
        admin_client, session, data, message):
    page = admin_client.post("/clinic/staff/invite", data=data)
    assert page.status_code == 422 and message in page.data
    assert session.scalar(select(func.count()).select_from(StaffInvitation)) == 0


def test_an_address_invited_by_another_clinic_waits_for_that_invitation(
        app, admin_client, world, factory, session):
    other_admin = factory.staff(world.other_clinic, "admin")
    with app.app_context():
        staff.invite_staff(session, Actor(other_admin), "wanted@example.org", "clinician")
        session.commit()
    page = admin_client.post("/clinic/staff/invite", data={"email": "wanted@example.org",
                                                           "role": "clinician"})
    assert page.status_code == 422 and b"open invitation to another clinic" in page.data


def test_the_password_follows_the_apps_rules(app, admin_client, session):
    token, _ = invite(admin_client)
    for password, confirm, message in (("short", "short", b"12 to 256 characters"),
                                       (NEW_PASSWORD, "something else entirely",
                                        b"The two passwords do not match.")):
        page = accept(app.test_client(), token, password, confirm)
        assert page.status_code == 422 and message in page.data
    assert session.scalar(select(func.count()).select_from(User).where(
        User.email == "new.colleague@example.org")) == 0
    assert accept(app.test_client(), token).status_code == 302


# -- roles and accounts ------------------------------------------------------------------------

def test_an_admin_changes_a_role_and_it_is_audited(admin_client, world, admin, session):
    answer = admin_client.post("/clinic/staff/role",
                               data={"user_id": world.clinician.id, "role": "admin"})
    assert answer.status_code == 303
    assert fresh(session, world.clinician).role == "admin"
    assert b"is now an admin" in admin_client.get("/clinic/staff").data
    changed = actions(session, "staff.role_change")
    assert len(changed) == 1
    assert (changed[0].actor_id, changed[0].object_id) == (admin.id, str(world.clinician.id))
    assert (changed[0].old_values, changed[0].new_values) == ({"role": "clinician"},
                                                              {"role": "admin"})
    # The same role again changes nothing and audits nothing.
    admin_client.post("/clinic/staff/role", data={"user_id": world.clinician.id,
                                                   "role": "admin"})
    assert len(actions(session, "staff.role_change")) == 1


def test_the_last_active_admin_is_kept(app, admin_client, world, admin, factory, session):
    """A deactivated admin does not count; whoever asks (here the system, as a command would),
    the clinic's one active admin is neither demoted nor deactivated. On the pages an admin
    cannot change their own account, so only a race could reach it (the next test)."""
    second = factory.staff(world.clinic, "admin")
    assert admin_client.post("/clinic/staff/active",
                             data={"user_id": second.id, "active": "off"}).status_code == 303
    messages = []
    with app.app_context():
        for change, value in ((staff.change_role, "clinician"), (staff.set_active, False)):
            with pytest.raises(staff.StaffAdminError) as refused:
                change(session, Actor(None), session.get(User, admin.id), value)
            messages.append(str(refused.value))
            session.rollback()
    assert all(f"{admin.email} is the clinic's only active admin" in message
               for message in messages)
    assert (fresh(session, admin).role, fresh(session, admin).active) == ("admin", True)


def test_an_admin_cannot_change_their_own_account(admin_client, admin, factory, world, session):
    factory.staff(world.clinic, "admin")  # another admin: the rule above is not what refuses
    for path, data, message in (
            ("/clinic/staff/role", {"user_id": admin.id, "role": "clinician"},
             b"You cannot change your own role: another admin can."),
            ("/clinic/staff/active", {"user_id": admin.id, "active": "off"},
             b"You cannot deactivate your own account: another admin can.")):
        page = admin_client.post(path, data=data)
        assert page.status_code == 422 and message in page.data
    assert (fresh(session, admin).role, fresh(session, admin).active) == ("admin", True)
    assert not actions(session, "staff.role_change") and not actions(session, "staff.deactivate")


def test_two_admins_demoting_each_other_at_once_leave_one_admin(
        app, world, admin, factory, session, database_url):
    skip_unless_postgresql(database_url)
    second = factory.staff(world.clinic, "admin")
    clients = {admin.id: app.test_client(), second.id: app.test_client()}
    for user in (admin, second):
        sign_in(clients[user.id], user)

    def post(actor_id: int, path: str, data: dict[str, object]):
        return lambda: clients[actor_id].post(path, data=data).status_code

    statuses = at_once(
        post(admin.id, "/clinic/staff/role", {"user_id": second.id, "role": "clinician"}),
        post(second.id, "/clinic/staff/active", {"user_id": admin.id, "active": "off"}))
    assert sorted(statuses) == [303, 422]
    session.rollback()
    assert session.scalar(select(func.count()).select_from(User).where(
        User.clinic_id == world.clinic.id, User.role == "admin", User.active.is_(True))) == 1
    assert len(actions(session, "staff.role_change") + actions(session, "staff.deactivate")) == 1


def test_deactivating_ends_the_accounts_open_session_at_once(
        app, admin_client, world, admin, session):
    colleague = app.test_client()
    sign_in(colleague, world.clinician)
    assert colleague.get("/clinic/patients").status_code == 200
    answer = admin_client.post("/clinic/staff/active",
                               data={"user_id": world.clinician.id, "active": "off"})
    assert answer.status_code == 303
    ended = colleague.get("/clinic/patients")
    assert ended.status_code == 302 and ended.location.startswith("/login")
    session.rollback()
    assert session.scalars(select(UserSession.ended_reason).where(
        UserSession.user_id == world.clinician.id)).all() == ["deactivated"]
    assert app.test_client().post("/login", data={"email": world.clinician.email,
                                                  "password": PASSWORD}).status_code == 401
    deactivated = actions(session, "staff.deactivate")
    assert len(deactivated) == 1 and deactivated[0].actor_id == admin.id
    assert (deactivated[0].old_values, deactivated[0].new_values) == ({"active": True},
                                                                      {"active": False})

    assert admin_client.post("/clinic/staff/active", data={
        "user_id": world.clinician.id, "active": "on"}).status_code == 303
    sign_in(colleague, world.clinician)
    assert colleague.get("/clinic/patients").status_code == 200
    assert len(actions(session, "staff.reactivate")) == 1


@pytest.mark.parametrize("data", [{}, {"user_id": "x", "role": "admin"},
                                  {"user_id": "1", "role": "patient"}])
def test_a_broken_role_form_gets_a_message_and_changes_nothing(admin_client, session, data):
    page = admin_client.post("/clinic/staff/role", data=data)
    assert page.status_code == 422 and b"The form was incomplete" in page.data
    assert not actions(session, "staff.role_change")


def test_audit_rows_hold_no_health_data(app, admin_client, world, session):
    token, _ = invite(admin_client, "audited@example.org")
    accept(app.test_client(), token)
    admin_client.post("/clinic/staff/role", data={"user_id": world.clinician.id,
                                                  "role": "admin"})
    admin_client.post("/clinic/staff/active", data={"user_id": world.clinician.id,
                                                    "active": "off"})
    session.rollback()
    rows = session.scalars(select(AuditEvent).where(AuditEvent.action.like("staff%"))).all()
    assert {row.action for row in rows} == {"staff_invitation.issue", "staff_invitation.accept",
                                            "staff.role_change", "staff.deactivate"}
    assert all(row.patient_id is None for row in rows)
    assert token not in str([(row.old_values, row.new_values, row.details) for row in rows])


# -- with CSRF on (the crawler of test_csrf_forms.py cannot reach these two forms) -----------

BASE_URL = "https://outcomes.test"


@pytest.fixture
def csrf_app(database_url):
    with running_app({**base_config(database_url), "WTF_CSRF_ENABLED": True}) as app:
        yield app


def post_from_page(client, page: str, action: str, data: dict, with_token: bool, form=None):
    """Post ``action`` as the form on ``page`` (or the page ``form`` answered) would, with or
    without its CSRF token."""
    html = form.data if form is not None else client.get(page, base_url=BASE_URL).data
    if with_token:
        data = {**data, "csrf_token": csrf_token(html)}
    return client.post(action, data=data, base_url=BASE_URL,
                       headers={"Referer": f"{BASE_URL}{page}"})


def test_revoking_and_accepting_need_their_forms_csrf_token(csrf_app, admin, session):
    revoked = issue(csrf_app, session, admin, "revoke.me@example.org")
    accepted = issue(csrf_app, session, admin, "accept.me@example.org")
    admin_client = csrf_app.test_client()
    assert post_from_page(admin_client, "/login", "/login", {
        "email": admin.email, "password": PASSWORD}, with_token=True).status_code == 302
    revoke = {"invitation_id": revoked.invitation.id}
    for with_token, status in ((False, 400), (True, 303)):
        assert post_from_page(admin_client, "/clinic/staff", "/clinic/staff/invitations/revoke",
                              revoke, with_token).status_code == status
        session.rollback()
        assert (session.get(StaffInvitation, revoked.invitation.id).revoked_at is not None) \
            == with_token

    invitee = csrf_app.test_client()
    opened = post_from_page(invitee, "/join", "/join", {"token": accepted.token},
                            with_token=True)
    assert opened.status_code == 200
    password = {"token": accepted.token, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    for with_token, status in ((False, 400), (True, 302)):
        answer = post_from_page(invitee, "/join", "/join/accept", password, with_token,
                                form=opened)
        assert answer.status_code == status
        assert session.scalar(select(func.count()).select_from(User).where(
            User.email == "accept.me@example.org")) == int(with_token)


def test_where_staff_need_a_second_factor_the_invitee_sets_up_theirs_next(
        app, admin_client, session):
    token, _ = invite(admin_client)
    app.config["STAFF_MFA_REQUIRED"] = True
    invitee = app.test_client()
    answer = accept(invitee, token)
    assert answer.status_code == 302 and answer.location.endswith("/login/authenticator")
    assert session.scalars(select(User.active).where(
        User.email == "new.colleague@example.org")).one()
    assert invitee.get("/clinic/patients").status_code == 302, "not signed in before it"
