"""Passkeys (issue 12 item 2, docs/accounts-and-sessions.md) with real WebAuthn data from a
software authenticator (tests/passkey_authenticator.py): added after confirming it is you,
to an account with an authenticator app, named, renamed and removed; signing in with one at
the second step exactly as with a code, refused for a replay, a count that does not rise,
an unknown or another account's passkey, a challenge used or expired; an admin's reset
removes them; patients may add factors and are then asked for them. Every test here runs
with STAFF_MFA_REQUIRED on."""
from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import func, select

from outcomes import clock, create_app
from outcomes.extensions import db
from outcomes.models import AuditEvent, Delivery, PasskeyCredential, User, UserSession
from outcomes.services import passkeys
from outcomes.services.audit import SYSTEM

from .conftest import PASSWORD, base_config, csrf_token
from .helpers import Authenticator, enrol_authenticator, give_password, running_app
from .passkey_authenticator import SoftwareAuthenticator

ORIGIN = "http://localhost"  # the test client's, where PUBLIC_BASE_URL is not set


@pytest.fixture
def app(database_url: str) -> Iterator[Flask]:
    with running_app({**base_config(database_url), "STAFF_MFA_REQUIRED": True}) as app:
        yield app


def signed_in_with_code(app, client, session, user: User) -> Authenticator:
    """``user`` enrols an authenticator app and signs in with its code (fresh enough then to
    change factors); the app, for later codes."""
    authenticator = enrol_authenticator(app, session, user)
    assert give_password(client, user) == "/login/code"
    assert client.post("/login/code", data={"code": authenticator.code()}).status_code == 302
    return authenticator


def add_passkey(client, device: SoftwareAuthenticator, name: str = "Work laptop", **claims):
    """The "Add a passkey" page's script: options for the name, the authenticator's answer."""
    options = client.post("/account/security/passkeys/options", data={"name": name})
    assert options.status_code == 200, options.data[:300]
    return client.post("/account/security/passkeys",
                       data={"credential": device.create(options.get_json(), **claims)})


def passkey_options(client) -> dict:
    options = client.post("/login/passkey/options")
    assert options.status_code == 200, options.data[:300]
    return options.get_json()


def sign_in_with_passkey(client, user: User, device: SoftwareAuthenticator, **claims):
    """The code page's script: the password first, then the passkey's answer to the options."""
    assert give_password(client, user) == "/login/code"
    return client.post("/login/passkey",
                       data={"credential": device.get(passkey_options(client), **claims)})


def audited(session, action: str, user: User) -> list[AuditEvent]:
    session.rollback()
    return session.scalars(select(AuditEvent).where(
        AuditEvent.action == action, AuditEvent.object_id == str(user.id))
        .order_by(AuditEvent.id)).all()


def stored_passkeys(session, user: User) -> list[PasskeyCredential]:
    session.rollback()
    session.expire_all()
    return session.scalars(select(PasskeyCredential).where(
        PasskeyCredential.user_id == user.id).order_by(PasskeyCredential.id)).all()


def notices(session, user: User) -> list[str]:
    session.rollback()
    return session.scalars(select(Delivery.account_notice).where(
        Delivery.user_id == user.id).order_by(Delivery.id)).all()


def shift_clock(monkeypatch, by: dt.timedelta) -> None:
    real = clock.utcnow
    monkeypatch.setattr(clock, "utcnow", lambda: real() + by)


def test_a_clinician_adds_a_passkey_and_signs_in_with_it(app, client, world, session):
    clinician = world.clinician
    signed_in_with_code(app, client, session, clinician)
    assert b"You have no passkey" in client.get("/account/security").data
    page = client.get("/account/security/passkeys/new")
    assert page.status_code == 200 and b"Create the passkey" in page.data

    options = client.post("/account/security/passkeys/options",
                          data={"name": " Work laptop "}).get_json()
    assert options["rp"] == {"id": "localhost", "name": "Outcomes"}
    assert options["user"]["name"] == clinician.email
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    assert options["attestation"] == "none" and options["excludeCredentials"] == []
    device = SoftwareAuthenticator(ORIGIN)
    added = client.post("/account/security/passkeys", data={"credential": device.create(options)})
    assert added.status_code == 200 and added.get_json() == {"redirect": "/account/security"}
    [passkey] = stored_passkeys(session, clinician)
    assert (passkey.credential_id, passkey.name, passkey.sign_count, passkey.transports) == \
        (device.id, "Work laptop", 1, ["internal"])
    assert passkey.last_used_at is None
    page = client.get("/account/security").data.decode()
    assert "Your passkey “Work laptop” is added" in page and "Work laptop" in page
    assert [event.details for event in audited(session, "mfa.passkey_added", clinician)] == \
        [{"passkey": passkey.id, "user_verified": True}]
    # The authenticator app's enrolment told them, and so did the passkey.
    assert notices(session, clinician) == ["factor_added", "factor_added"]

    client.post("/logout")
    assert give_password(client, clinician) == "/login/code"
    assert b"Use a passkey" in client.get("/login/code").data
    options = passkey_options(client)
    assert options["rpId"] == "localhost" and options["userVerification"] == "preferred"
    assert [allowed["id"] for allowed in options["allowCredentials"]] == [device.id]
    signed_in = client.post("/login/passkey", data={"credential": device.get(options)})
    assert signed_in.status_code == 200
    assert signed_in.get_json() == {"redirect": "/clinic/patients"}
    assert client.get("/clinic/patients").status_code == 200
    assert audited(session, "auth.login", clinician)[-1].details == {"second_factor": "passkey"}
    assert audited(session, "mfa.passkey_used", clinician)[-1].details == \
        {"passkey": passkey.id}
    [passkey] = stored_passkeys(session, clinician)
    assert passkey.sign_count == 2 and passkey.last_used_at is not None
    # Nothing the browser sent, nor the key, is in any audit row.
    details = " ".join(json.dumps(event.details) for event in session.scalars(
        select(AuditEvent)))
    assert device.id not in details and options["challenge"] not in details


def test_the_relying_party_is_the_public_address(database_url, world, session):
    app = create_app({**base_config(database_url), "STAFF_MFA_REQUIRED": True,
                      "PUBLIC_BASE_URL": "https://outcomes.example.org"})
    client = app.test_client()
    signed_in_with_code(app, client, session, world.clinician)
    options = client.post("/account/security/passkeys/options", data={"name": "Key"})
    assert options.get_json()["rp"]["id"] == "outcomes.example.org"
    # The test client's own address is not the public one: its answer is refused.
    device = SoftwareAuthenticator(ORIGIN)
    refused = client.post("/account/security/passkeys",
                          data={"credential": device.create(options.get_json())})
    assert refused.status_code == 401
    added = add_passkey(client, SoftwareAuthenticator("https://outcomes.example.org"))
    assert added.status_code == 200
    with app.app_context():
        db.engine.dispose()


def test_a_second_passkey_excludes_the_first_and_one_cannot_be_added_twice(app, client, world,
                                                                         session):
    signed_in_with_code(app, client, session, world.clinician)
    laptop = SoftwareAuthenticator(ORIGIN)
    assert add_passkey(client, laptop).status_code == 200
    options = client.post("/account/security/passkeys/options",
                          data={"name": "Laptop again"}).get_json()
    assert [excluded["id"] for excluded in options["excludeCredentials"]] == [laptop.id]
    again = client.post("/account/security/passkeys", data={"credential": laptop.create(options)})
    assert again.status_code == 409
    assert again.get_json() == {"error": passkeys.ALREADY_REGISTERED}
    assert add_passkey(client, SoftwareAuthenticator(ORIGIN), "Phone").status_code == 200
    assert [passkey.name for passkey in stored_passkeys(session, world.clinician)] == \
        ["Work laptop", "Phone"]


def test_registration_refuses_bad_answers_and_names(app, client, world, session):
    signed_in_with_code(app, client, session, world.clinician)
    device = SoftwareAuthenticator(ORIGIN)
    for name, message in (("   ", "Give the passkey a name."),
                          ("x" * 61, "Use at most 60 characters.")):
        refused = client.post("/account/security/passkeys/options", data={"name": name})
        assert refused.status_code == 422 and refused.get_json() == {"error": message}
    # No options asked for: no challenge to answer.
    assert client.post("/account/security/passkeys", data={"credential": "{}"}).status_code == 400
    for claims in ({"origin": "https://evil.example"}, {"rp_id": "evil.example"}):
        options = client.post("/account/security/passkeys/options", data={"name": "Key"})
        refused = client.post("/account/security/passkeys",
                              data={"credential": device.create(options.get_json(), **claims)})
        assert refused.status_code == 401
        assert refused.get_json() == {"error": passkeys.NOT_VERIFIED}
    for garbage in ("not json", "[1, 2]", json.dumps({"id": "x", "rawId": "!!",
                                                      "response": {}, "type": "public-key"})):
        client.post("/account/security/passkeys/options", data={"name": "Key"})
        refused = client.post("/account/security/passkeys", data={"credential": garbage})
        assert refused.status_code == 401
    # A challenge serves once: the right answer, sent after a refused one, finds none.
    options = client.post("/account/security/passkeys/options", data={"name": "Key"}).get_json()
    answer = device.create(options)
    client.post("/account/security/passkeys", data={"credential": "not json"})
    assert client.post("/account/security/passkeys",
                       data={"credential": answer}).status_code == 400
    assert stored_passkeys(session, world.clinician) == []
    assert {event.details["kind"] for event in audited(session, "mfa.failed", world.clinician)} \
        == {"passkey_registration"}


def test_an_old_challenge_is_refused(app, client, world, session, monkeypatch):
    signed_in_with_code(app, client, session, world.clinician)
    options = client.post("/account/security/passkeys/options", data={"name": "Key"}).get_json()
    shift_clock(monkeypatch, passkeys.CHALLENGE_LIFETIME + dt.timedelta(seconds=1))
    late = client.post("/account/security/passkeys",
                       data={"credential": SoftwareAuthenticator(ORIGIN).create(options)})
    # Past the time for changing factors too: confirm first, then the challenge is gone.
    assert late.status_code == 302 and late.location.startswith("/account/security/confirm")


def test_a_passkey_needs_an_authenticator_app_first(app, world, session):
    client = app.test_client()
    assert give_password(client, world.patient_user) == "/me/"
    with client.session_transaction() as browser_session:
        browser_session["_authenticated_at"] = clock.utcnow().timestamp()
    page = client.get("/account/security")
    assert page.status_code == 200 and b"Add a passkey" not in page.data
    for answer in (client.get("/account/security/passkeys/new"),
                   client.post("/account/security/passkeys/options", data={"name": "Key"})):
        assert answer.status_code == 302 and answer.location == "/account/security"
    with app.app_context():
        user = session.get(User, world.patient_user.id)
        with pytest.raises(passkeys.PasskeyError, match="authenticator app first"):
            passkeys.register(session, SYSTEM, user, passkeys.relying_party(ORIGIN), b"x" * 32,
                              "{}", "Key")


def test_signing_in_refuses_replays_clones_and_others_passkeys(app, world, session, factory):
    clinician, colleague = world.clinician, factory.staff(world.clinic)
    client = app.test_client()
    signed_in_with_code(app, client, session, clinician)
    device = SoftwareAuthenticator(ORIGIN)
    add_passkey(client, device)
    other_client = app.test_client()
    signed_in_with_code(app, other_client, session, colleague)
    colleagues_device = SoftwareAuthenticator(ORIGIN)
    add_passkey(other_client, colleagues_device)
    client.post("/logout")

    def refused(answer) -> None:
        assert answer.status_code == 401, answer.data[:300]
        assert "not one of this account's" in answer.get_json()["error"]

    # Another account's passkey, and one nobody registered.
    refused(sign_in_with_passkey(client, clinician, colleagues_device))
    refused(sign_in_with_passkey(client, clinician, SoftwareAuthenticator(ORIGIN)))
    # Signed for another site.
    refused(sign_in_with_passkey(client, clinician, device, origin="https://evil.example"))
    # A copy of the authenticator whose count lags behind: it signs with the count the
    # server saw last, which does not rise.
    good = sign_in_with_passkey(client, clinician, device)
    assert good.status_code == 200
    client.post("/logout")
    seen = device.sign_count
    device.sign_count -= 1
    refused(sign_in_with_passkey(client, clinician, device))
    assert device.sign_count == seen == stored_passkeys(session, clinician)[0].sign_count
    # An answer sent again: its challenge is used up, and a new one is not its.
    assert give_password(client, clinician) == "/login/code"
    answer = device.get(passkey_options(client))
    assert client.post("/login/passkey", data={"credential": answer}).status_code == 200
    client.post("/logout")
    assert give_password(client, clinician) == "/login/code"
    assert client.post("/login/passkey", data={"credential": answer}).status_code == 400
    passkey_options(client)
    refused(client.post("/login/passkey", data={"credential": answer}))
    # Garbage in the answer: refused, never an error of the server.
    for garbage in ("{", "[]", json.dumps({"id": device.id, "rawId": device.id,
                                            "type": "public-key", "response": {
                                                "clientDataJSON": "%%", "authenticatorData": "",
                                                "signature": ""}})):
        passkey_options(client)
        refused(client.post("/login/passkey", data={"credential": garbage}))
    assert client.get("/clinic/patients").location.startswith("/login")
    kinds = [event.details for event in audited(session, "mfa.failed", clinician)]
    assert kinds == [{"kind": "passkey"}] * 8


def test_an_authenticator_without_a_count_signs_in_each_time(app, client, world, session):
    """Both counts zero: nothing to compare, so the single-use challenge is the guard."""
    signed_in_with_code(app, client, session, world.clinician)
    device = SoftwareAuthenticator(ORIGIN, counts=False, user_verified=False)
    add_passkey(client, device)
    for _ in range(2):
        client.post("/logout")
        assert sign_in_with_passkey(client, world.clinician, device).status_code == 200
    assert stored_passkeys(session, world.clinician)[0].sign_count == 0


def open_sessions(session, user: User) -> int:
    session.rollback()
    return session.scalar(select(func.count()).select_from(UserSession).where(
        UserSession.user_id == user.id, UserSession.ended_at.is_(None)))


def replayed_with_copied_cookie(app, client, path: str, data: dict[str, str]):
    """What a copy of ``client``'s cookie, taken before the second step and sent with the
    same body after it succeeded (a proxy log, a stolen backup), would be answered."""
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"]).value
    assert client.post(path, data=data).status_code in (200, 302)
    replay = app.test_client()
    replay.set_cookie(app.config["SESSION_COOKIE_NAME"], cookie)
    return replay.post(path, data=data)


def test_a_copy_of_the_cookie_cannot_replay_a_passkey_sign_in(app, client, world, session):
    """The challenge serves once only in the cookie it was taken out of: an older copy still
    holds it. An authenticator with no count (iCloud Keychain, Google Password Manager) gives
    no second guard, so the accepted passkey changes the account's session token, which the
    half-finished sign-in in the copy carries."""
    clinician = world.clinician
    signed_in_with_code(app, client, session, clinician)
    device = SoftwareAuthenticator(ORIGIN, counts=False)
    add_passkey(client, device)
    client.post("/logout")
    assert give_password(client, clinician) == "/login/code"
    answer = {"credential": device.get(passkey_options(client))}
    replayed = replayed_with_copied_cookie(app, client, "/login/passkey", answer)
    assert replayed.status_code == 302 and replayed.location == "/login"
    assert open_sessions(session, clinician) == 1
    assert client.get("/clinic/patients").status_code == 200


def test_a_copy_of_the_cookie_cannot_replay_a_code_sign_in(app, client, world, session):
    """The same copy with a code: its step is used already."""
    clinician = world.clinician
    authenticator = enrol_authenticator(app, session, clinician)
    assert give_password(client, clinician) == "/login/code"
    replayed = replayed_with_copied_cookie(app, client, "/login/code",
                                           {"code": authenticator.code()})
    assert replayed.status_code == 401 and b"used already" in replayed.data
    assert open_sessions(session, clinician) == 1


def test_the_code_page_offers_a_passkey_only_to_accounts_with_one(app, client, world, session):
    enrol_authenticator(app, session, world.clinician)
    assert give_password(client, world.clinician) == "/login/code"
    page = client.get("/login/code")
    assert b"Use a passkey" not in page.data and b"passkeys.js" not in page.data
    answer = client.post("/login/passkey/options")
    assert answer.status_code == 409 and "no passkey" in answer.get_json()["error"]
    # Nobody waiting for a second step: to sign in; signed in already: home.
    fresh = app.test_client()
    assert fresh.post("/login/passkey/options").location == "/login"
    assert fresh.post("/login/passkey", data={"credential": "{}"}).location == "/login"


def test_an_old_sign_in_challenge_is_refused(app, client, world, session, monkeypatch):
    signed_in_with_code(app, client, session, world.clinician)
    device = SoftwareAuthenticator(ORIGIN)
    add_passkey(client, device)
    client.post("/logout")
    assert give_password(client, world.clinician) == "/login/code"
    answer = device.get(passkey_options(client))
    shift_clock(monkeypatch, passkeys.CHALLENGE_LIFETIME + dt.timedelta(seconds=1))
    late = client.post("/login/passkey", data={"credential": answer})
    assert late.status_code == 400 and "took too long" in late.get_json()["error"]


def test_passkeys_are_renamed_and_removed_by_their_owner_only(app, client, world, session,
                                                              factory, monkeypatch):
    signed_in_with_code(app, client, session, world.clinician)
    add_passkey(client, SoftwareAuthenticator(ORIGIN))
    passkey_id = stored_passkeys(session, world.clinician)[0].id
    colleague = app.test_client()
    signed_in_with_code(app, colleague, session, factory.staff(world.clinic))
    for path in ("/account/security/passkeys/rename", "/account/security/passkeys/remove"):
        for someone_elses in (passkey_id, 999_999, "x"):
            answer = colleague.post(path, data={"passkey_id": someone_elses, "name": "Mine"})
            assert answer.status_code == 404
    renamed = client.post("/account/security/passkeys/rename",
                          data={"passkey_id": passkey_id, "name": "  Old laptop "})
    assert renamed.location == "/account/security"
    assert stored_passkeys(session, world.clinician)[0].name == "Old laptop"
    blank = client.post("/account/security/passkeys/rename",
                        data={"passkey_id": passkey_id, "name": " "}, follow_redirects=True)
    assert "The name was not changed: Give the passkey a name." in blank.data.decode()
    assert stored_passkeys(session, world.clinician)[0].name == "Old laptop"

    # Removing is a change of factors: it asks who it is after a while.
    shift_clock(monkeypatch, dt.timedelta(minutes=6))
    asked = client.post("/account/security/passkeys/remove", data={"passkey_id": passkey_id},
                        headers={"Referer": "http://localhost/account/security"})
    assert asked.location == "/account/security/confirm?next=/account/security"
    assert client.post("/account/security/confirm",
                       data={"secret": PASSWORD}).location == "/account/security"
    removed = client.post("/account/security/passkeys/remove", data={"passkey_id": passkey_id},
                          follow_redirects=True)
    assert "The passkey “Old laptop” is removed" in removed.data.decode()
    assert stored_passkeys(session, world.clinician) == []
    for action in ("mfa.passkey_renamed", "mfa.passkey_removed"):
        assert [event.details for event in audited(session, action, world.clinician)] == \
            [{"passkey": passkey_id}]


def test_an_admins_reset_removes_a_colleagues_passkeys(app, world, session, factory):
    admin = factory.staff(world.clinic, "admin")
    colleague = app.test_client()
    signed_in_with_code(app, colleague, session, world.clinician)
    add_passkey(colleague, SoftwareAuthenticator(ORIGIN))
    client = app.test_client()
    signed_in_with_code(app, client, session, admin)
    reset = client.post("/account/staff-factors/reset", data={"user_id": world.clinician.id},
                        follow_redirects=True)
    assert b"authenticator, recovery codes and passkeys are reset" in reset.data
    assert stored_passkeys(session, world.clinician) == []
    assert audited(session, "mfa.factors_reset", world.clinician)[0].details == \
        {"had_authenticator": True, "passkeys_removed": 1}


def test_a_patient_may_add_factors_and_is_then_asked_for_them(app, client, world, session):
    patient = world.patient_user
    assert give_password(client, patient) == "/me/"  # no second step yet
    page = client.get("/account/security")
    assert page.status_code == 200 and b"It is your choice" in page.data
    assert client.get("/account/security/authenticator").location == \
        "/account/security/confirm?next=/account/security/authenticator"
    client.post("/account/security/confirm", data={"secret": PASSWORD})
    enrolment = client.get("/account/security/authenticator").data
    secret = re.search(rb'<code class="secret">([A-Z2-7 ]+)</code>', enrolment).group(1)
    authenticator = Authenticator(secret.decode().replace(" ", ""))
    codes = client.post("/account/security/authenticator", data={"code": authenticator.code()})
    assert codes.status_code == 200 and codes.data.count(b"<li><code>") == 10
    device = SoftwareAuthenticator(ORIGIN)
    assert add_passkey(client, device, "My phone").status_code == 200
    assert notices(session, patient) == ["factor_added", "factor_added"]
    for path in ("/me/", "/me/settings", "/account/security"):
        assert client.get(path).status_code == 200, path
    client.post("/logout")

    assert give_password(client, patient) == "/login/code"
    assert client.post("/login/code", data={"code": authenticator.code()}).location == "/me/"
    client.post("/logout")
    assert sign_in_with_passkey(client, patient, device).get_json() == {"redirect": "/me/"}
    assert client.get("/me/").status_code == 200


def test_passkey_sign_in_is_limited_per_account_across_addresses(database_url, world, session):
    app = create_app({**base_config(database_url), "STAFF_MFA_REQUIRED": True,
                      "RATELIMIT_ENABLED": True, "MFA_CODE_LIMIT": "2 per minute"})
    client = app.test_client()
    signed_in_with_code(app, client, session, world.clinician)
    device = SoftwareAuthenticator(ORIGIN)
    add_passkey(client, device)
    stranger = SoftwareAuthenticator(ORIGIN)
    answers = []
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = address
        answers.append(sign_in_with_passkey(client, world.clinician, stranger).status_code)
    assert answers == [401, 401, 429]
    assert client.post("/login/passkey",
                       data={"credential": device.get(passkey_options(client))}).status_code == 429
    with app.app_context():
        db.engine.dispose()


def test_the_passkey_forms_refuse_a_missing_csrf_token(database_url, world, session):
    """test_csrf_forms.py's crawler reaches none of them (they need a confirmed identity, a
    passkey, or a second step awaited): each is refused without its token, taken with it."""
    app = create_app({**base_config(database_url), "STAFF_MFA_REQUIRED": True,
                      "WTF_CSRF_ENABLED": True})
    client = app.test_client()
    authenticator = enrol_authenticator(app, session, world.clinician)

    def post(path: str, page: str, **fields):
        assert client.post(path, data=fields).status_code == 400
        return client.post(path, data={**fields, "csrf_token": csrf_token(client.get(page).data)})

    post("/login", "/login", email=world.clinician.email, password=PASSWORD)
    post("/login/code", "/login/code", code=authenticator.code())
    device = SoftwareAuthenticator(ORIGIN)
    new = "/account/security/passkeys/new"
    options = post("/account/security/passkeys/options", new, name="Key").get_json()
    assert post("/account/security/passkeys", new,
                credential=device.create(options)).status_code == 200
    [passkey] = stored_passkeys(session, world.clinician)
    assert post("/account/security/passkeys/rename", "/account/security",
                passkey_id=passkey.id, name="Laptop").status_code == 302
    post("/logout", "/account/security")
    post("/login", "/login", email=world.clinician.email, password=PASSWORD)
    options = post("/login/passkey/options", "/login/code").get_json()
    assert post("/login/passkey", "/login/code",
                credential=device.get(options)).status_code == 200
    assert post("/account/security/passkeys/remove", "/account/security",
                passkey_id=passkey.id).status_code == 302
    assert session.scalar(select(func.count()).select_from(PasskeyCredential)) == 0
    with app.app_context():
        db.engine.dispose()
