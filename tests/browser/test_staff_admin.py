"""Staff administration in the browser (issue 12's "Done when"), over HTTPS with CSRF on, as
in production: an admin invites a clinician; the clinician opens the link in another browser,
chooses a password, sets up their authenticator app and is signed in; the admin deactivates
them, and the clinician's open session ends at once: their next page asks them to sign in."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from outcomes.models import AuditEvent, User

from .conftest import check_page, enrol_on_page, expect, sign_in

pytestmark = pytest.mark.browser

EMAIL = "new.clinician@example.org"
PASSWORD = "a password the clinician chose"


def test_an_admin_invites_a_clinician_then_deactivates_them_and_their_session_ends(
        live_server, new_context, world, factory, session):
    admin = factory.staff(world.clinic, "admin")
    admin_page = new_context(desktop=True).new_page()
    sign_in(admin_page, live_server, admin.email)
    admin_page.get_by_role("link", name="Staff", exact=True).click()
    expect(admin_page.get_by_role("heading", name=f"Staff of {world.clinic.name}")).to_be_visible()
    check_page(admin_page)
    admin_page.get_by_label("Their email address").fill(EMAIL)
    admin_page.get_by_label("Role", exact=True).select_option("clinician")
    admin_page.get_by_role("button", name="Make the invitation link").click()
    expect(admin_page.get_by_role("heading", name=f"Invitation for {EMAIL}")).to_be_visible()
    expect(admin_page.locator(".qr svg")).to_be_visible()
    check_page(admin_page)
    link = admin_page.locator(".invitation-link a").get_attribute("href")
    assert link.startswith(f"{live_server}/join#")

    clinician = new_context().new_page()
    clinician.goto(link)  # the page's script posts the token from after the '#'
    expect(clinician.get_by_role("heading", name=f"Join {world.clinic.name}")).to_be_visible()
    expect(clinician).to_have_url(f"{live_server}/join")  # the token left the address bar
    check_page(clinician)
    clinician.get_by_label("Choose a password").fill(PASSWORD)
    clinician.get_by_label("Type the password again").fill(PASSWORD)
    clinician.get_by_role("button", name="Create my account").click()
    enrol_on_page(clinician, EMAIL)  # production asks staff for a second factor
    expect(clinician.get_by_role("button", name="Sign out")).to_be_visible()
    expect(clinician.get_by_role("heading", name="Patients")).to_be_visible()

    admin_page.get_by_role("link", name="Back to the staff").click()
    admin_page.get_by_role("button", name=f"Deactivate {EMAIL}").click()
    expect(admin_page.get_by_text(f"{EMAIL} is deactivated")).to_be_visible()
    check_page(admin_page)

    clinician.get_by_role("link", name="Alerts", exact=True).click()
    expect(clinician).to_have_url(re.compile(r"/login"))
    expect(clinician.get_by_role("button", name="Sign in")).to_be_visible()
    expect(clinician.get_by_role("button", name="Sign out")).to_have_count(0)

    session.rollback()
    account = session.scalars(select(User).where(User.email == EMAIL)).one()
    assert (account.role, account.active, account.clinic_id) == ("clinician", False,
                                                                  world.clinic.id)
    assert {"staff_invitation.issue", "staff_invitation.accept", "staff.deactivate"} <= set(
        session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("staff%"))))
