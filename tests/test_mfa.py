"""Staff MFA (issue 12 item 2, docs/accounts-and-sessions.md): the authenticator enrolled at
the first sign-in, codes accepted once within a step of drift, recovery codes, confirming
it is you before factors change, an admin's reset, the secret encrypted at rest, and the
setting production refuses to turn off. Every test here runs with STAFF_MFA_REQUIRED on."""
from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from outcomes import clock, create_app
from outcomes.config import (
    ConfigurationError,
    check_production_settings,
    settings_from_environment,
    staff_mfa_required,
)
from outcomes.extensions import db
from outcomes.models import AuditEvent, Delivery, RecoveryCode, User
from outcomes.services import mfa
from outcomes.services.audit import SYSTEM

from .conftest import PASSWORD, base_config, csrf_token
from .helpers import Authenticator, enrol_authenticator, give_password, running_app


@pytest.fixture
def app(database_url: str) -> Iterator[Flask]:
    with running_app({**base_config(database_url), "STAFF_MFA_REQUIRED": True}) as app:
        yield app


def sign_in_with_code(client, user: User, code: str):
    assert give_password(client, user) == "/login/code"
    return client.post("/login/code", data={"code": code})


def audited(session, action: str, user: User) -> list[AuditEvent]:
    session.rollback()
    return session.scalars(select(AuditEvent).where(
        AuditEvent.action == action, AuditEvent.object_id == str(user.id))
        .order_by(AuditEvent.id)).all()


def stored(session, user: User) -> User:
    session.rollback()
    session.expire_all()
    return session.get(User, user.id)


def shown_secret(page) -> str:
    """The secret an enrolment page shows as text (beside its QR code)."""
    return re.search(rb'<code class="secret">([A-Z2-7 ]+)</code>', page.data).group(1) \
        .decode().replace(" ", "")


def shift_clock(monkeypatch, by: dt.timedelta) -> None:
    real = clock.utcnow
    monkeypatch.setattr(clock, "utcnow", lambda: real() + by)


def test_first_sign_in_enrols_the_authenticator_before_anything_else(app, client, world,
                                                                     session):
    clinician = world.clinician
    assert give_password(client, clinician) == "/login/authenticator"
    # The password alone signs nobody in.
    assert client.get("/clinic/patients").location.startswith("/login")
    page = client.get("/login/authenticator")
    assert page.status_code == 200 and b"<svg" in page.data
    assert page.headers["Cache-Control"] == "no-store"
    secret = shown_secret(page)
    refused = client.post("/login/authenticator", data={"code": "000000"})
    assert refused.status_code == 401 and b"not right" in refused.data
    assert stored(session, clinician).totp_secret is None
    assert [event.details for event in audited(session, "mfa.failed", clinician)] == \
        [{"kind": "enrolment"}]
    assert shown_secret(client.get("/login/authenticator")) == secret  # the same one

    code = mfa.code_at(secret, mfa.step_at(clock.utcnow()))
    enrolled = client.post("/login/authenticator", data={"code": code})
    assert enrolled.status_code == 200
    codes = re.findall(rb"<li><code>([a-z2-9-]{14})</code></li>", enrolled.data)
    assert len(set(codes)) == mfa.RECOVERY_CODE_COUNT
    assert client.get("/clinic/patients").status_code == 200
    user = stored(session, clinician)
    assert user.mfa_enrolled_at is not None
    # Encrypted at rest: the column never holds the secret, and the key opens it.
    assert secret not in user.totp_secret and secret.lower() not in user.totp_secret.lower()
    with app.app_context():
        assert mfa.unseal(app.config, user.totp_secret) == secret
    hashes = session.scalars(select(RecoveryCode.code_hash).where(
        RecoveryCode.user_id == clinician.id)).all()
    assert len(hashes) == 10 and not {code.decode() for code in codes} & set(hashes)
    assert audited(session, "auth.login", clinician)[-1].details == \
        {"second_factor": "enrolment"}
    assert audited(session, "mfa.enrolled", clinician)[0].details == {"replaced": False}


def test_a_code_signs_in_once_and_is_refused_again(app, client, world, session, factory):
    authenticator = enrol_authenticator(app, session, world.clinician)
    code = authenticator.code()
    accepted = sign_in_with_code(client, world.clinician, code)
    assert accepted.status_code == 302 and accepted.location == "/clinic/patients"
    client.post("/logout")
    replayed = sign_in_with_code(client, world.clinician, code)
    assert replayed.status_code == 401 and b"used already" in replayed.data
    assert client.get("/clinic/patients").location.startswith("/login")
    assert audited(session, "mfa.failed", world.clinician)[-1].details == {"kind": "totp"}
    assert audited(session, "auth.login", world.clinician)[-1].details == \
        {"second_factor": "totp"}
    # No code, secret or recovery code in any audit row's details.
    details = " ".join(str(event.details) for event in session.scalars(select(AuditEvent)))
    assert code not in details and authenticator.secret not in details


def test_codes_one_step_either_side_are_accepted_and_no_further(app, world, session,
                                                              monkeypatch):
    authenticator = enrol_authenticator(app, session, world.clinician)
    shift_clock(monkeypatch, dt.timedelta(minutes=10))
    now = mfa.step_at(clock.utcnow())
    with app.app_context():
        user = session.get(User, world.clinician.id)

        def accepted(step: int) -> bool:
            return mfa.accept_totp(session, user, app.config,
                                   mfa.code_at(authenticator.secret, step))

        assert not accepted(now - 2)
        assert accepted(now - 1)
        assert not accepted(now - 1)  # a replay
        assert not accepted(now + 2)
        assert accepted(now + 1)
        assert not accepted(now)  # a step before the last accepted one
        session.commit()
    assert stored(session, world.clinician).totp_last_step == now + 1


def test_wrong_codes_are_limited_per_account_across_addresses(database_url, world, session):
    app = create_app({**base_config(database_url), "STAFF_MFA_REQUIRED": True,
                      "RATELIMIT_ENABLED": True, "MFA_CODE_LIMIT": "3 per minute"})
    authenticator = enrol_authenticator(app, session, world.clinician)
    answers = []
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"):
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = address
        give_password(client, world.clinician)
        answers.append(client.post("/login/code", data={"code": "123456"}).status_code)
    assert answers == [401, 401, 401, 429]
    # Even the right code waits now: the limit is the account's, whatever the address.
    assert client.post("/login/code", data={"code": authenticator.code()}).status_code == 429
    assert b"Too many attempts" in client.post("/login/code", data={"code": "1"}).data
    with app.app_context():
        db.engine.dispose()


def test_a_recovery_code_signs_in_once(app, client, world, session):
    enrol_authenticator(app, session, world.clinician)
    with app.app_context():
        codes = mfa.issue_recovery_codes(session, SYSTEM, session.get(User, world.clinician.id),
                                         app.config)
        session.commit()
    first, second = codes[0], codes[1]
    response = sign_in_with_code(client, world.clinician, first)
    assert response.status_code == 302 and response.location == "/account/security"
    page = client.get("/account/security")
    assert b"recovery code; 9 left" in page.data and b"9 of your recovery codes" in page.data
    assert audited(session, "mfa.recovery_code_used", world.clinician)[0].details == \
        {"left": 9}
    client.post("/logout")
    assert sign_in_with_code(client, world.clinician, first).status_code == 401
    # Typed in capitals, without its dashes: the same code.
    typed = second.replace("-", " ").upper()
    assert sign_in_with_code(client, world.clinician, typed).status_code == 302


def test_factors_change_only_after_confirming_it_is_you(app, client, world, session,
                                                       monkeypatch):
    authenticator = enrol_authenticator(app, session, world.clinician)
    assert sign_in_with_code(client, world.clinician, authenticator.code()).status_code == 302
    # Just signed in with a code: fresh enough to make new recovery codes.
    assert client.post("/account/security/recovery-codes").status_code == 200
    shift_clock(monkeypatch, dt.timedelta(minutes=6))
    asked = client.post("/account/security/recovery-codes",
                        headers={"Referer": "http://localhost/account/security"})
    assert asked.status_code == 302
    assert asked.location == "/account/security/confirm?next=/account/security"
    before = session.scalars(select(RecoveryCode.code_hash)).all()
    assert client.get("/account/security/authenticator").location == \
        "/account/security/confirm?next=/account/security/authenticator"
    wrong = client.post("/account/security/confirm", data={"secret": "not my password!"})
    assert wrong.status_code == 401
    assert audited(session, "mfa.failed", world.clinician)[-1].details == {"kind": "password"}
    confirmed = client.post("/account/security/confirm?next=/account/security/authenticator",
                            data={"secret": PASSWORD})
    assert confirmed.location == "/account/security/authenticator"
    session.rollback()
    assert session.scalars(select(RecoveryCode.code_hash)).all() == before

    # A new authenticator replaces the old one once its first code is typed.
    new = Authenticator(shown_secret(client.get("/account/security/authenticator")))
    replaced = client.post("/account/security/authenticator", data={"code": new.code()})
    assert replaced.status_code == 200 and replaced.data.count(b"<li><code>") == 10
    assert audited(session, "mfa.enrolled", world.clinician)[-1].details == {"replaced": True}
    client.post("/logout")
    assert sign_in_with_code(client, world.clinician, authenticator.code()).status_code == 401
    assert sign_in_with_code(client, world.clinician, new.code()).status_code == 302


def test_a_fresh_code_confirms_it_is_you_too(app, client, world, session, monkeypatch):
    authenticator = enrol_authenticator(app, session, world.clinician)
    sign_in_with_code(client, world.clinician, authenticator.code())
    shift_clock(monkeypatch, dt.timedelta(minutes=6))
    confirmed = client.post("/account/security/confirm", data={"secret": authenticator.code()})
    assert confirmed.location == "/account/security"
    assert client.post("/account/security/recovery-codes").status_code == 200


def test_an_admin_resets_a_colleagues_factors(app, world, session, factory):
    admin = factory.staff(world.clinic, "admin")
    admin_app = enrol_authenticator(app, session, admin)
    colleague_app = enrol_authenticator(app, session, world.clinician)
    colleague = app.test_client()
    assert sign_in_with_code(colleague, world.clinician, colleague_app.code()).status_code == 302

    client = app.test_client()
    assert sign_in_with_code(client, admin, admin_app.code()).status_code == 302
    page = client.get("/account/staff-factors")
    assert world.clinician.email.encode() in page.data
    assert world.other_clinician.email.encode() not in page.data
    enrolment_notices = sorted(session.execute(
        select(Delivery.user_id, Delivery.account_notice)).all())
    # Each enrolment told its account that a factor was added.
    assert enrolment_notices == sorted([(admin.id, "factor_added"),
                                        (world.clinician.id, "factor_added")])
    for someone_else in (world.other_clinician.id, world.patient_user.id, 999_999):
        refused = client.post("/account/staff-factors/reset", data={"user_id": someone_else})
        assert refused.status_code == 404
    assert session.scalar(select(func.count()).select_from(Delivery)) == 2

    reset = client.post("/account/staff-factors/reset", data={"user_id": world.clinician.id})
    assert reset.status_code == 302
    user = stored(session, world.clinician)
    assert (user.totp_secret, user.mfa_enrolled_at, user.totp_last_step) == (None, None, None)
    assert colleague.get("/clinic/patients").location.startswith("/login")  # signed out
    assert session.scalar(select(func.count()).select_from(RecoveryCode).where(
        RecoveryCode.user_id == user.id)) == 0
    event = audited(session, "mfa.factors_reset", world.clinician)[0]
    assert (event.actor_id, event.details) == \
        (admin.id, {"had_authenticator": True, "passkeys_removed": 0})
    notices = session.execute(select(Delivery.user_id, Delivery.account_notice)).all()
    assert sorted(notices) == sorted([*enrolment_notices, (admin.id, "factors_reset"),
                                      (world.clinician.id, "factors_reset")])
    # Their next sign-in enrols a new authenticator.
    assert give_password(app.test_client(), world.clinician) == "/login/authenticator"

    clinician = app.test_client()
    other = enrol_authenticator(app, session, world.clinician)
    sign_in_with_code(clinician, world.clinician, other.code())
    assert clinician.get("/account/staff-factors").status_code == 404
    assert clinician.post("/account/staff-factors/reset",
                          data={"user_id": admin.id}).status_code == 404


def test_patients_sign_in_with_their_password_alone_until_they_add_a_factor(app, client, world,
                                                                           session):
    response = client.post("/login", data={"email": world.patient_user.email,
                                           "password": PASSWORD})
    assert response.location == "/me/"
    client.post("/logout")
    authenticator = enrol_authenticator(app, session, world.patient_user)
    assert sign_in_with_code(client, world.patient_user, authenticator.code()).location == "/me/"


def test_the_code_page_lasts_ten_minutes_after_the_password(app, client, world, session,
                                                            monkeypatch):
    authenticator = enrol_authenticator(app, session, world.clinician)
    give_password(client, world.clinician)
    shift_clock(monkeypatch, dt.timedelta(minutes=11))
    late = client.post("/login/code", data={"code": authenticator.code()})
    assert late.status_code == 302 and late.location == "/login"


def test_a_secret_sealed_under_an_old_key_opens_and_is_sealed_again(app, world, session):
    authenticator = enrol_authenticator(app, session, world.clinician)
    old_key = app.config["SECRET_KEY"]
    rotated = create_app({**base_config(app.config["DATABASE_URL"]),
                          "STAFF_MFA_REQUIRED": True, "SECRET_KEY": "n" * 48,
                          "SECRET_KEY_FALLBACKS": [old_key]})
    sealed_before = stored(session, world.clinician).totp_secret
    client = rotated.test_client()
    assert sign_in_with_code(client, world.clinician, authenticator.code()).status_code == 302
    sealed_after = stored(session, world.clinician).totp_secret
    assert sealed_after != sealed_before
    assert mfa.unseal({"SECRET_KEY": "n" * 48}, sealed_after) == authenticator.secret
    assert mfa.unseal({"SECRET_KEY": "n" * 48}, sealed_before) is None
    with rotated.app_context():
        db.engine.dispose()


def test_production_refuses_to_turn_staff_mfa_off():
    production = {"SECRET_KEY": "s" * 40, "PUBLIC_BASE_URL": "https://outcomes.example.org",
                  "AUDIT_KEYS": "2026-11:" + "k" * 40}
    assert staff_mfa_required(settings_from_environment(production))
    check_production_settings(settings_from_environment(production))
    with pytest.raises(ConfigurationError, match="STAFF_MFA_REQUIRED cannot be turned off in "
                                                 "production"):
        check_production_settings(settings_from_environment(
            {**production, "STAFF_MFA_REQUIRED": "no"}))
    development = settings_from_environment({"OUTCOMES_ENV": "development"})
    assert not staff_mfa_required(development)
    check_production_settings(development)
    assert staff_mfa_required(settings_from_environment(
        {"OUTCOMES_ENV": "development", "STAFF_MFA_REQUIRED": "yes"}))


def test_the_factor_forms_refuse_a_missing_csrf_token(database_url, world, session):
    """The forms a crawler of the app cannot reach (test_csrf_forms.py's EXEMPT): each refused
    without its token, and taken with it."""
    app = create_app({**base_config(database_url), "STAFF_MFA_REQUIRED": True,
                      "WTF_CSRF_ENABLED": True})
    client = app.test_client()

    def post(path: str, page: str, **fields: str):
        assert client.post(path, data=fields).status_code == 400
        return client.post(path, data={**fields, "csrf_token": csrf_token(client.get(page).data)})

    assert post("/login", "/login", email=world.clinician.email,
                password=PASSWORD).location == "/login/authenticator"
    first = Authenticator(shown_secret(client.get("/login/authenticator")))
    assert post("/login/authenticator", "/login/authenticator",
                code=first.code()).status_code == 200
    assert post("/account/security/recovery-codes", "/account/security").status_code == 200
    second = Authenticator(shown_secret(client.get("/account/security/authenticator")))
    assert post("/account/security/authenticator", "/account/security/authenticator",
                code=second.code()).status_code == 200
    post("/logout", "/account/security")
    post("/login", "/login", email=world.clinician.email, password=PASSWORD)
    assert post("/login/code", "/login/code", code=second.code()).location == "/clinic/patients"
    assert len(audited(session, "mfa.enrolled", world.clinician)) == 2
    with app.app_context():
        db.engine.dispose()


def test_one_code_sent_twice_at_once_is_accepted_once(app, world, session, database_url):
    """Two requests with the same code at the same moment (PostgreSQL, where they really run
    together): the second's conditional UPDATE waits for the first's row lock, then finds the
    step taken."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one writer at a time")
    authenticator = enrol_authenticator(app, session, world.clinician)
    code = authenticator.code()
    engine = create_engine(database_url)
    first_updated = threading.Event()
    results: dict[str, bool] = {}

    def first() -> None:
        with Session(engine) as own:
            results["first"] = mfa.accept_totp(own, own.get(User, world.clinician.id),
                                               app.config, code)
            first_updated.set()
            time.sleep(0.5)  # the second request is waiting on the row meanwhile
            own.commit()

    def second() -> None:
        first_updated.wait(5)
        with Session(engine) as own:
            results["second"] = mfa.accept_totp(own, own.get(User, world.clinician.id),
                                                app.config, code)
            own.commit()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    engine.dispose()
    assert results == {"first": True, "second": False}
