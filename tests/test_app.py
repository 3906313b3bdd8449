"""Configuration, the health check, error pages and security headers."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from outcomes import create_app
from outcomes.config import (
    DEVELOPMENT_SECRET_KEY,
    ConfigurationError,
    normalise_database_url,
    settings_from_environment,
)
from outcomes.models import AuditEvent

from .conftest import base_config


def test_production_refuses_to_start_without_a_secret_key():
    with pytest.raises(ConfigurationError, match="SECRET_KEY must be set"):
        create_app({"SECRET_KEY": None, "DATABASE_URL": "sqlite://"})


@pytest.mark.parametrize("secret", [DEVELOPMENT_SECRET_KEY, "short"])
def test_production_refuses_a_development_or_short_secret(secret):
    with pytest.raises(ConfigurationError, match="development key or shorter"):
        create_app({"SECRET_KEY": secret, "DATABASE_URL": "sqlite://"})


def test_production_refuses_to_start_without_an_https_public_address():
    with pytest.raises(ConfigurationError, match="PUBLIC_BASE_URL"):
        create_app({"SECRET_KEY": "s" * 40, "DATABASE_URL": "sqlite://"})
    create_app({"SECRET_KEY": "s" * 40, "DATABASE_URL": "sqlite://",
                "PUBLIC_BASE_URL": "https://outcomes.example.org",
                "AUDIT_KEYS": "2026-11:" + "k" * 40})


def test_production_defaults_are_safe():
    settings = settings_from_environment({"SECRET_KEY": "s" * 40})
    assert settings["OUTCOMES_ENV"] == "production"
    assert settings["SESSION_COOKIE_SECURE"] is True
    assert settings["SESSION_COOKIE_HTTPONLY"] is True
    assert settings["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert settings["ARGON2_MEMORY_COST_KIB"] >= 19 * 1024
    assert settings["DATABASE_URL"] == "sqlite:///outcomes.sqlite3"


def test_unknown_environment_name_is_refused():
    with pytest.raises(ConfigurationError, match="OUTCOMES_ENV"):
        settings_from_environment({"OUTCOMES_ENV": "staging"})


@pytest.mark.parametrize("given, expected", [
    ("postgres://u@h/d", "postgresql+psycopg://u@h/d"),
    ("postgresql://u@h/d", "postgresql+psycopg://u@h/d"),
    ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
    ("sqlite:///x.db", "sqlite:///x.db"),
])
def test_database_urls_use_psycopg3(given, expected):
    assert normalise_database_url(given) == expected


def test_default_sqlite_database_lives_in_the_instance_folder(tmp_path):
    app = create_app({**base_config("sqlite:///outcomes.sqlite3")})
    with app.app_context():
        from outcomes.extensions import db
        assert db.engine.url.database.startswith(app.instance_path)


def test_healthz_answers_ok_when_the_database_answers(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


@pytest.mark.parametrize("url", ["sqlite:////nonexistent-dir/deeper/db.sqlite3",
                                 "postgresql+psycopg://postgres@127.0.0.1:1/none"])
def test_healthz_answers_503_when_the_database_does_not(url):
    app = create_app(base_config(url))
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable"}


@pytest.mark.parametrize("path", ["/login", "/static/css/outcomes.css", "/no/such/page"])
def test_security_headers_on_pages_and_static_files(client, path):
    response = client.get(path)
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in response.headers  # plain HTTP
    if not path.startswith("/static/"):
        assert response.headers["Cache-Control"] == "no-store"
        assert len(response.headers["X-Request-ID"]) >= 8


@pytest.mark.parametrize(("trusted_proxies", "forwarded", "base_url", "hsts"), [
    (0, {}, "https://localhost", True),                              # TLS at gunicorn
    (1, {"X-Forwarded-Proto": "https"}, "http://localhost", True),   # TLS at the proxy
    (0, {"X-Forwarded-Proto": "https"}, "http://localhost", False),  # an untrusted claim
    (1, {}, "http://localhost", False),
])
def test_hsts_only_when_served_over_https(database_url, trusted_proxies, forwarded, base_url,
                                           hsts):
    app = create_app({**base_config(database_url), "TRUSTED_PROXIES": trusted_proxies})
    response = app.test_client().get("/login", headers=forwarded, base_url=base_url)
    assert response.status_code == 200
    assert (response.headers.get("Strict-Transport-Security")
            == ("max-age=31536000; includeSubDomains" if hsts else None))


def test_unknown_page_is_a_plain_404(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert b"Page not found" in response.data


def test_an_unexpected_error_shows_no_details_and_stores_nothing(app, client, session):
    @app.get("/boom")
    def boom():
        from outcomes.services import audit
        from outcomes.web import current_actor
        audit.record(session, current_actor(), "should.not.persist")
        raise RuntimeError("secret health detail")

    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = client.get("/boom")
    assert response.status_code == 500
    assert b"secret health detail" not in response.data
    assert b"Something went wrong" in response.data
    session.rollback()
    assert session.scalar(select(AuditEvent).where(AuditEvent.action == "should.not.persist")) is None


def test_static_files_are_versioned_compressed_and_cached_for_a_year(client):
    page = client.get("/login").data.decode()
    css = re.search(r'href="(/static/css/outcomes\.css\?v=[0-9a-f]{12})"', page).group(1)
    assert client.get(css).status_code == 200
    response = client.get("/static/vendor/plotly.min.js",
                          headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert "max-age=31536000" in response.headers["Cache-Control"]
    assert len(response.data) < 600_000  # the partial bundle, compressed
