"""The Outcomes web app: measurement-based care for ketamine-infusion clinics."""
from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from flask import Flask
from flask_login import current_user
from sqlalchemy import event
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter
from whitenoise import WhiteNoise

from .config import check_production_settings, settings_from_environment
from .database import engine_options, install_deadlines
from .extensions import csrf, db, limiter, login_manager, warn_if_limits_are_not_shared
from .templating import install_template_helpers


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: settings from the environment, then ``config`` on top (tests use it)."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.update(settings_from_environment())
    if config:
        app.config.update(config)
    check_production_settings(app.config)
    app.config["SQLALCHEMY_ENGINES"] = {"default": engine_options(app.config)}
    if app.config["TRUSTED_PROXIES"]:
        proxies = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)

    register_extensions(app)
    register_static_files(app)
    install_template_helpers(app)
    register_request_hooks(app)
    register_blueprints(app)
    register_error_handlers(app)
    register_cli(app)
    return app


def register_extensions(app: Flask) -> None:
    app.url_map.converters["id"] = RecordIdConverter
    db.init_app(app)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            event.listen(db.engine, "connect", _configure_sqlite_connection)
            event.listen(db.engine, "begin", _begin_sqlite_transaction)
        elif db.engine.dialect.name == "postgresql":
            install_deadlines(db.engine)
    csrf.init_app(app)
    limiter.init_app(app)
    warn_if_limits_are_not_shared(app)
    # Flask-Login's own context processor loads the signed-in user for every template, even
    # one that never shows it; the proxy loads it only when a template asks. An error page
    # must render when the database that holds the user is what failed (web.py).
    login_manager.init_app(app, add_context_processor=False)
    app.context_processor(lambda: {"current_user": current_user})
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.login_message_category = "info"
    # "basic": a changed address (a phone moving between networks) marks the session
    # non-fresh instead of ending it mid-questionnaire; sessions end server-side at sign-out.
    login_manager.session_protection = "basic"

    from .services.accounts import load_user

    login_manager.user_loader(load_user)


class RecordIdConverter(IntegerConverter):
    """Record ids in URLs: positive and within a 32-bit integer, so an absurd id is a plain
    404 instead of a database overflow."""

    def __init__(self, url_map: Any) -> None:
        super().__init__(url_map, min=1, max=2**31 - 1)


def _configure_sqlite_connection(dbapi_connection: Any, connection_record: Any) -> None:
    # Python's sqlite3 driver opens transactions by itself and not before a SAVEPOINT, which
    # would commit a savepoint's work on its own; SQLAlchemy's documented fix is to turn
    # that off and emit BEGIN ourselves (_begin_sqlite_transaction).
    dbapi_connection.isolation_level = None
    # SQLite ignores foreign keys unless asked, and WAL lets the demo server read while a
    # seed or a second worker writes.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA busy_timeout = 5000")
    cursor.close()


def register_static_files(app: Flask) -> None:
    """Static files through WhiteNoise: gzip or brotli copies made by `make assets` when the
    browser accepts them, and a year of caching, safe because every URL names the content.
    They carry the app's security headers too (WhiteNoise answers before the app's hooks)."""
    from .web import add_security_headers

    app.wsgi_app = WhiteNoise(app.wsgi_app, root=app.static_folder, prefix="static/",
                              max_age=app.config["STATIC_MAX_AGE"],
                              add_headers_function=lambda headers, path, url:
                              add_security_headers(headers))

    @app.url_defaults
    def version_static_urls(endpoint: str, values: dict[str, Any]) -> None:
        if endpoint == "static" and "v" not in values:
            values["v"] = static_version(app.static_folder, values["filename"])


@lru_cache(maxsize=256)
def _content_hash(path: str, modified: int) -> str:
    with open(path, "rb") as file:
        return hashlib.sha256(file.read()).hexdigest()[:12]


def static_version(folder: str, filename: str) -> str:
    """A short hash of a static file's content (re-read when the file changes)."""
    path = os.path.join(folder, filename)
    try:
        return _content_hash(path, os.stat(path).st_mtime_ns)
    except OSError:
        return "missing"


def _begin_sqlite_transaction(connection: Any) -> None:
    # IMMEDIATE: take the write lock at once. Every request writes (its audit rows at
    # least), and the audit chain must be extended by one writer at a time.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def register_request_hooks(app: Flask) -> None:
    from .web import install_request_hooks

    install_request_hooks(app)


def register_blueprints(app: Flask) -> None:
    from .auth.views import bp as auth_bp
    from .clinician import bp as clinician_bp
    from .exports.views import bp as exports_bp
    from .health import bp as health_bp
    from .patient.views import bp as patient_bp

    app.register_blueprint(health_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(patient_bp)
    app.register_blueprint(clinician_bp, url_prefix="/clinic")
    app.register_blueprint(exports_bp, url_prefix="/exports")


def register_error_handlers(app: Flask) -> None:
    from .web import install_error_handlers

    install_error_handlers(app)


def register_cli(app: Flask) -> None:
    from .cli import register_commands

    register_commands(app)
