"""Extensions, created unbound; ``create_app`` binds them to the app."""
import logging

from flask import Flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_sqlalchemy_lite import SQLAlchemy
from flask_wtf import CSRFProtect

db = SQLAlchemy()
login_manager = LoginManager()
csrf = CSRFProtect()
# The client's address, as ProxyFix gives it behind TRUSTED_PROXIES.
limiter = Limiter(get_remote_address)

log = logging.getLogger(__name__)


def warn_if_limits_are_not_shared(app: Flask) -> None:
    """Say loudly at start when production counts sign-in attempts in each process alone."""
    config = app.config
    if config.get("TESTING") or config.get("OUTCOMES_ENV") != "production":
        return
    if not config["RATELIMIT_STORAGE_URI"].startswith("memory://"):
        return
    log.warning(
        "SIGN-IN LIMITS ARE NOT SHARED: RATELIMIT_STORAGE_URI is memory://, so every worker "
        "process (and every host) counts sign-in attempts on its own, and N workers allow N "
        "times the limits. Set RATELIMIT_STORAGE_URI=redis://host:6379/0 unless this runs as "
        "exactly one worker on one host.")
