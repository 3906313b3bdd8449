"""Sign-in limits that count: shared between processes through Redis, per address and per
account (across any number of addresses), slowing an attacker without locking the owner out,
and answering the same whether or not the account exists. The same two kinds of limit hold the
pages that lead to an account without its password: asking for a reset link (per email
address) and choosing a password with a reset link or a patient's or staff invitation (per
link, that is per account), each beside the per-client one.

The Redis at 127.0.0.1:6379 is the real one. Each test keeps to keys of its own: a secret key
of its own (the account keys are keyed hashes of the email) and client addresses of its own,
or a key prefix of its own for the servers it starts.
"""
from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from outcomes import create_app
from outcomes.auth.throttle import LINK_PASSWORD_LIMIT
from outcomes.extensions import db, limiter
from outcomes.models import Patient
from outcomes.services.audit import Actor
from outcomes.services.enrolment import issue_invitation
from outcomes.services.password_resets import issue_clinic_reset
from outcomes.services.staff import invite_staff

from .conftest import PASSWORD, base_config, csrf_token

REDIS = "redis://127.0.0.1:6379/0"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def redis() -> str:
    """The Redis URL; without a Redis these tests are skipped with the reason, unless
    ``REQUIRE_REDIS=1``, in which case they fail (so CI cannot go green without them)."""
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        if os.environ.get("REQUIRE_REDIS") == "1":
            pytest.fail("no Redis at 127.0.0.1:6379, and REQUIRE_REDIS=1", pytrace=False)
        pytest.skip("no Redis at 127.0.0.1:6379: shared sign-in limit tests skipped")
    return REDIS


def limited_app(database_url: str, **settings: object) -> Flask:
    return create_app({**base_config(database_url), "RATELIMIT_ENABLED": True,
                       "RATELIMIT_STORAGE_URI": REDIS, "TRUSTED_PROXIES": 1,
                       "SECRET_KEY": f"sign-in-limits-{uuid.uuid4().hex}" + "k" * 16,
                       **settings})


@pytest.fixture
def app(database_url: str, redis: str) -> Iterator[Flask]:
    """Many addresses may try (a generous per-address limit); 5 wrong passwords an hour per
    account."""
    app = limited_app(database_url, SIGN_IN_RATE_LIMIT="100 per minute",
                      ACCOUNT_SIGN_IN_LIMIT="5 per hour")
    yield app
    with app.app_context():
        db.engine.dispose()


def addresses() -> Iterator[str]:
    """Client addresses of this test's own (documentation range, a random /16 per test)."""
    prefix = f"198.{18 + uuid.uuid4().int % 2}.{uuid.uuid4().int % 256}"
    return (f"{prefix}.{host}" for host in range(1, 255))


def attempt(client, email: str, password: str, address: str):
    return client.post("/login", data={"email": email, "password": password},
                       headers={"X-Forwarded-For": address})


def test_an_account_throttle_holds_across_many_addresses(app, world):
    client, source = app.test_client(), addresses()
    statuses = [attempt(client, world.clinician.email, f"guess number {n}!!", next(source))
                .status_code for n in range(12)]
    assert statuses == [401] * 5 + [429] * 7
    # The right password from yet another new address is slowed too, not let through.
    assert attempt(client, world.clinician.email, PASSWORD, next(source)).status_code == 429
    # Other accounts are untouched, and the email is compared as stored (case, spaces).
    assert attempt(client, world.patient_user.email, PASSWORD, next(source)).status_code == 302
    assert attempt(client, f"  {world.clinician.email.upper()} ", "another guess!!",
                   next(source)).status_code == 429


def test_the_owner_on_a_device_that_signed_in_before_is_not_locked_out(app, world):
    owner, source = app.test_client(), addresses()
    home = next(source)
    assert attempt(owner, world.clinician.email, PASSWORD, home).status_code == 302
    owner.post("/logout", headers={"X-Forwarded-For": home})
    attacker = app.test_client()
    for n in range(8):
        attempt(attacker, world.clinician.email, f"guess number {n}!!", next(source))
    assert attempt(attacker, world.clinician.email, PASSWORD, next(source)).status_code == 429
    # The owner's phone carries the device cookie of its last sign-in: a budget of its own.
    assert attempt(owner, world.clinician.email, "a typo of mine!", home).status_code == 401
    assert attempt(owner, world.clinician.email, PASSWORD, home).status_code == 302
    # The cookie names one account: it opens no budget for another.
    owner.post("/logout", headers={"X-Forwarded-For": home})
    statuses = {attempt(owner, world.patient_user.email, f"wrong {n}!!!!!!!", next(source))
                .status_code for n in range(7)}
    assert 429 in statuses


def test_wrong_password_answers_are_the_same_whether_or_not_the_account_exists(app, world):
    client, source = app.test_client(), addresses()
    real = [attempt(client, world.clinician.email, f"wrong {n}!!!!!!", next(source))
            for n in range(7)]
    nobody = f"nobody-{uuid.uuid4().hex[:6]}@example.org"
    made_up = [attempt(client, nobody, f"wrong {n}!!!!!!", next(source)) for n in range(7)]
    assert [r.status_code for r in real] == [r.status_code for r in made_up] == \
        [401] * 5 + [429] * 2
    for one, other in ((real[0], made_up[0]), (real[-1], made_up[-1])):
        # The form shows back the email it was given, and nothing else differs.
        assert one.data.replace(world.clinician.email.encode(), b"EMAIL") == \
            other.data.replace(nobody.encode(), b"EMAIL")
    assert "known_device" not in real[0].headers.get("Set-Cookie", "")


def test_the_per_address_limit_holds_too(database_url, world, redis):
    app = limited_app(database_url, SIGN_IN_RATE_LIMIT="3 per minute",
                      ACCOUNT_SIGN_IN_LIMIT="100 per hour")
    client, address = app.test_client(), next(addresses())
    statuses = [attempt(client, f"user-{n}@example.org", "wrong password!", address).status_code
                for n in range(4)]
    assert statuses == [401, 401, 401, 429]


def test_an_unreachable_limit_store_does_not_stop_sign_in(database_url, world, monkeypatch):
    """Redis down: the limits are counted in memory meanwhile; nobody gets an error page."""
    # The limiter is one object for every app of the process, and a new app does not clear
    # its mark of a dead store: left set, later tests would count in memory until a health
    # check (backing off to minutes) finds Redis again, and lose their counts as it does.
    monkeypatch.setattr(limiter, "_storage_dead", False)
    app = limited_app(database_url, RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0")
    client = app.test_client()
    assert attempt(client, world.clinician.email, "wrong password!", "192.0.2.7").status_code \
        == 401
    assert attempt(client, world.clinician.email, PASSWORD, "192.0.2.7").status_code == 302


# -- the links that lead to an account: resets, patient and staff invitations ------------------

def reset_link(app: Flask, session, patient: Patient, by) -> str:
    """A new reset link's token for ``patient``, issued by their clinician ``by``."""
    with app.app_context():
        issued = issue_clinic_reset(session, Actor(by), session.get(Patient, patient.id))
        session.commit()
    return issued.token


def staff_link(app: Flask, session, factory, clinic) -> str:
    """A new staff invitation's token, issued by an admin of ``clinic``."""
    admin = factory.staff(clinic, "admin")
    with app.app_context():
        issued = invite_staff(session, Actor(admin), f"new-{uuid.uuid4().hex[:8]}@example.org",
                              "clinician")
        session.commit()
    return issued.token


def invitation_link(app: Flask, session, factory, clinic, clinician) -> str:
    """A new patient invitation's token, for a new patient of ``clinic`` without an account,
    issued by their clinician."""
    patient = factory.patient(clinic, clinician, with_login=False)
    with app.app_context():
        issued = issue_invitation(session, Actor(clinician), session.get(Patient, patient.id))
        session.commit()
    return issued.token


def choose_password(client, route: str, token: str, password: str, address: str):
    """The invitation's form asks for the sign-in email too: a new one each time."""
    return client.post(route, data={"token": token, "password": password,
                                    "confirm": password,
                                    "email": f"new-{uuid.uuid4().hex[:8]}@example.org"},
                       headers={"X-Forwarded-For": address})


@pytest.mark.parametrize("route, ends_in", [("/reset/new-password", 303),
                                            ("/join/accept", 302),
                                            ("/invite/accept", 302)])
def test_passwords_posted_with_one_link_are_limited_across_addresses(
        app, session, world, factory, route, ends_in):
    if route == "/reset/new-password":
        link = reset_link(app, session, world.patient, world.clinician)
        other = reset_link(app, session, world.other_patient, world.other_clinician)
    elif route == "/invite/accept":
        link, other = (invitation_link(app, session, factory, clinic, clinician)
                       for clinic, clinician in ((world.clinic, world.clinician),
                                                 (world.other_clinic, world.other_clinician)))
    else:
        link, other = (staff_link(app, session, factory, clinic)
                       for clinic in (world.clinic, world.other_clinic))
    client, source = app.test_client(), addresses()
    # Passwords the rules refuse, each from a new address: ten a link, then 429.
    assert LINK_PASSWORD_LIMIT == "10 per hour"
    statuses = [choose_password(client, route, link, "too short", next(source)).status_code
                for _ in range(11)]
    assert statuses == [422] * 10 + [429]
    # What counts is the link, not the password: a good one is held too, from anywhere.
    assert choose_password(client, route, link, "a brand new passphrase 42",
                           next(source)).status_code == 429
    # Another account's link is untouched.
    assert choose_password(client, route, other, "a brand new passphrase 42",
                           next(source)).status_code == ends_in


@pytest.mark.parametrize("route", ["/forgot-password", "/reset", "/reset/new-password",
                                   "/join", "/join/accept", "/invite/accept"])
def test_each_link_page_holds_the_per_client_limit(database_url, world, redis, route):
    """Made-up tokens (and addresses) name no account, so only the per-client limit can hold
    someone trying many: SIGN_IN_RATE_LIMIT, here 3 a minute."""
    app = limited_app(database_url, SIGN_IN_RATE_LIMIT="3 per minute")
    client, address = app.test_client(), next(addresses())
    statuses = [client.post(route, data={"token": f"made-up-{n}", "email": f"x{n}@example.org",
                                         "password": PASSWORD, "confirm": PASSWORD},
                            headers={"X-Forwarded-For": address}).status_code
                for n in range(4)]
    assert statuses[3] == 429 and 429 not in statuses[:3]
    with app.app_context():
        db.engine.dispose()


def test_reset_requests_are_limited_per_address_across_client_addresses(app, world):
    """Three an hour for one email (RESET_REQUESTS_PER_ADDRESS), from any number of client
    addresses, whether or not an account has it; other addresses untouched."""
    client, source = app.test_client(), addresses()
    nobody = f"nobody-{uuid.uuid4().hex[:6]}@example.org"
    for email in (world.patient_user.email, nobody):
        statuses = [client.post("/forgot-password", data={"email": email},
                                headers={"X-Forwarded-For": next(source)}).status_code
                    for _ in range(4)]
        assert statuses == [200] * 3 + [429]
    assert client.post("/forgot-password", data={"email": world.clinician.email},
                       headers={"X-Forwarded-For": next(source)}).status_code == 200


def production_app(database_url: str, **settings: object) -> Flask:
    config = {**base_config(database_url), "TESTING": False, "OUTCOMES_ENV": "production",
              "PUBLIC_BASE_URL": "https://outcomes.example.org",
              "AUDIT_KEYS": "test:" + "a" * 64, "ARGON2_TIME_COST": 2,
              "ARGON2_MEMORY_COST_KIB": 19 * 1024, **settings}
    return create_app(config)


def test_production_counting_in_memory_warns_loudly_at_start(database_url, caplog):
    with caplog.at_level(logging.WARNING, logger="outcomes"):
        production_app(database_url)
    assert "SIGN-IN LIMITS ARE NOT SHARED" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="outcomes"):
        production_app(database_url, RATELIMIT_STORAGE_URI=REDIS)
    assert "SIGN-IN LIMITS ARE NOT SHARED" not in caplog.text


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve(database_url: str, storage: str, prefix: str, log: Path) -> tuple[subprocess.Popen,
                                                                           str]:
    """One server process of the app (gunicorn, one worker), as a second host would be."""
    port = free_port()
    environment = {
        "PATH": os.environ.get("PATH", ""), "OUTCOMES_ENV": "development",
        "DATABASE_URL": database_url, "SECRET_KEY": "two-hosts-" + "s" * 40,
        "ARGON2_TIME_COST": "1", "ARGON2_MEMORY_COST_KIB": "1024", "ARGON2_PARALLELISM": "1",
        "RATELIMIT_STORAGE_URI": storage, "RATELIMIT_KEY_PREFIX": prefix,
        "SIGN_IN_RATE_LIMIT": "4 per minute", "ACCOUNT_SIGN_IN_LIMIT": "100 per minute",
    }
    with log.open("ab") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers", "1", "--no-control-socket",
             "--bind", f"127.0.0.1:{port}", "wsgi:app"],
            cwd=ROOT, env=environment, stdout=output, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{base}/healthz", timeout=2).close()
            return server, base
        except OSError:
            if server.poll() is not None:
                break
            time.sleep(0.1)
    server.kill()
    pytest.fail(f"the server did not start:\n{log.read_text(errors='replace')}")


def wrong_password(base: str, email: str) -> int:
    """One sign-in with a wrong password, through the form (its CSRF token and cookie)."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    with opener.open(f"{base}/login", timeout=10) as page:
        token = csrf_token(page.read())
    data = urllib.parse.urlencode({"email": email, "password": "not the password",
                                   "csrf_token": token}).encode()
    try:
        with opener.open(f"{base}/login", data=data, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def allowed_across_two_hosts(database_url: str, storage: str, tmp_path: Path) -> int:
    """Wrong passwords answered (not refused with 429) when 16 go to two servers in turn."""
    prefix = f"test-{uuid.uuid4().hex}"
    servers = [serve(database_url, storage, prefix, tmp_path / f"server-{n}.log")
               for n in range(2)]
    try:
        statuses = [wrong_password(servers[n % 2][1], "someone@example.org")
                    for n in range(16)]
    finally:
        for server, _ in servers:
            server.terminate()
            server.wait(timeout=10)
    assert set(statuses) <= {401, 429}, statuses
    return statuses.count(401)


def test_two_app_processes_sharing_redis_share_the_limit(database_url, world, tmp_path,
                                                          redis):
    assert allowed_across_two_hosts(database_url, REDIS, tmp_path) == 4
    # The same servers counting in memory each allow the whole limit: what Redis prevents.
    assert allowed_across_two_hosts(database_url, "memory://", tmp_path) == 8
