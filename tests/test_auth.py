"""Signing in and out: one generic failure, the same work either way, safe redirects, CSRF."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from outcomes import create_app
from outcomes.auth.access import safe_next_path
from outcomes.models import AuditEvent
from outcomes.services import accounts

from .conftest import PASSWORD, base_config, csrf_token, sign_in


def test_clinician_signs_in_and_lands_on_the_patient_list(client, world):
    response = sign_in(client, world.clinician)
    assert response.location == "/clinic/patients"


def test_patient_signs_in_and_lands_on_their_home(client, world):
    response = sign_in(client, world.patient_user)
    assert response.location == "/me/"


@pytest.mark.parametrize("email_kind", ["wrong password", "unknown email"])
def test_failed_sign_in_gives_one_generic_message(client, world, email_kind):
    email = world.clinician.email if email_kind == "wrong password" else "nobody@example.org"
    response = client.post("/login", data={"email": email, "password": "not the password!"})
    assert response.status_code == 401
    assert b"The email or password is not right" in response.data
    assert b"unknown" not in response.data.lower()


def test_email_is_case_insensitive(client, world):
    response = client.post("/login", data={"email": world.clinician.email.upper(),
                                           "password": PASSWORD})
    assert response.status_code == 302


def test_same_argon2_work_whether_or_not_the_email_exists(app, world, monkeypatch):
    calls = []
    original_verify = accounts.PasswordHasher.verify

    def counting_verify(self, stored, password):
        calls.append(stored[:10])
        return original_verify(self, stored, password)

    monkeypatch.setattr(accounts.PasswordHasher, "verify", counting_verify)
    client = app.test_client()
    client.post("/login", data={"email": "nobody@example.org", "password": "x" * 12})
    client.post("/login", data={"email": world.clinician.email, "password": "x" * 12})
    assert len(calls) == 2
    assert all(prefix.startswith("$argon2id$") for prefix in calls)


def test_failed_and_successful_sign_ins_are_audited(client, world, session):
    client.post("/login", data={"email": "nobody@example.org", "password": "x" * 12})
    sign_in(client, world.clinician)
    actions = session.scalars(select(AuditEvent.action).where(
        AuditEvent.action.like("auth.%")).order_by(AuditEvent.id)).all()
    assert actions == ["auth.login_failed", "auth.login"]


def test_inactive_user_cannot_sign_in(client, world, session):
    user = session.get(type(world.clinician), world.clinician.id)
    user.active = False
    session.commit()
    response = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 401


@pytest.mark.parametrize("target, expected", [
    ("/clinic/patients/3", "/clinic/patients/3"),
    ("/me/?a=b", "/me/?a=b"),
    ("https://evil.example/", None),
    ("//evil.example/", None),
    ("/\\evil.example", None),
    ("javascript:alert(1)", None),
    ("", None),
    (None, None),
])
def test_next_is_followed_only_to_paths_on_this_site(target, expected):
    assert safe_next_path(target) == expected


def test_sign_in_follows_a_safe_next_and_ignores_an_unsafe_one(client, world):
    response = client.post("/login?next=/clinic/patients/new",
                           data={"email": world.clinician.email, "password": PASSWORD})
    assert response.location == "/clinic/patients/new"
    client.post("/logout")
    response = client.post("/login?next=https://evil.example/",
                           data={"email": world.clinician.email, "password": PASSWORD})
    assert response.location == "/clinic/patients"


def test_signed_out_visitors_are_sent_to_sign_in(client, world):
    response = client.get("/clinic/patients")
    assert response.status_code == 302
    assert response.location.startswith("/login?next=")


def test_logout_needs_post_and_ends_the_session(client, world):
    sign_in(client, world.clinician)
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 302
    assert client.get("/clinic/patients").status_code == 302


def test_every_post_needs_a_csrf_token(database_url, world):
    app = create_app({**base_config(database_url), "WTF_CSRF_ENABLED": True})
    client = app.test_client()
    response = client.post("/login", data={"email": world.clinician.email, "password": PASSWORD})
    assert response.status_code == 400
    assert b"Nothing was saved" in response.data
    page = client.get("/login")
    response = client.post("/login", data={"email": world.clinician.email, "password": PASSWORD,
                                           "csrf_token": csrf_token(page.data)})
    assert response.status_code == 302
    for path in ("/clinic/patients/new", f"/clinic/patients/{world.patient.id}/invitation",
                 "/logout", f"/clinic/patients/{world.patient.id}/paper/phq9"):
        assert client.post(path, data={}).status_code == 400, path


def test_session_cookie_is_httponly_lax_and_secure_in_production(database_url, world):
    config = {**base_config(database_url), "OUTCOMES_ENV": "production", "TESTING": False,
              "SESSION_COOKIE_SECURE": True, "ARGON2_MEMORY_COST_KIB": 19 * 1024,
              "ARGON2_TIME_COST": 2, "PUBLIC_BASE_URL": "https://outcomes.example.org"}
    app = create_app(config)
    client = app.test_client()
    response = client.post("/login", data={"email": world.clinician.email, "password": PASSWORD})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie


def test_weak_passwords_are_refused(app_context):
    with pytest.raises(accounts.AccountError, match="at least 12"):
        accounts.hash_password("short")


def test_passwords_are_hashed_with_argon2id(app_context):
    assert accounts.hash_password("a sufficiently long one").startswith("$argon2id$")


def test_audit_rows_for_sign_in_carry_the_ip_address(client, world, session):
    sign_in(client, world.clinician)
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "auth.login"))
    assert event.ip_address == "127.0.0.1"
    assert event.actor_id == world.clinician.id and event.actor_role == "clinician"
    assert session.scalar(select(func.count(AuditEvent.id))) >= 1


def test_a_copied_session_cookie_stops_working_at_sign_out(app, client, world):
    sign_in(client, world.clinician)
    stolen = client.get_cookie("session").value
    client.post("/logout")
    thief = app.test_client()
    thief.set_cookie("session", stolen)
    response = thief.get("/clinic/patients")
    assert response.status_code == 302 and response.location.startswith("/login")


def test_sign_in_attempts_are_rate_limited_per_address(database_url, world):
    app = create_app({**base_config(database_url), "RATELIMIT_ENABLED": True,
                      "SIGN_IN_RATE_LIMIT": "3 per minute"})
    client = app.test_client()
    statuses = [client.post("/login", data={"email": world.clinician.email,
                                            "password": "wrong password!"}).status_code
                for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    assert b"Please wait a while" in client.post("/login", data={}).data


def test_an_invitation_link_that_no_longer_works_states_the_clinics_lifetime(app, client):
    app.config["INVITATION_VALID_DAYS"] = 3
    response = client.get("/invite/a-token-once-in-a-path")
    assert response.status_code == 404 and b"work once and for 3 days" in response.data
