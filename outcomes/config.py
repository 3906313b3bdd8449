"""Settings from the environment, with safe production defaults.

Every setting can be overridden by the ``config`` mapping given to ``create_app`` (tests do).
"""
from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import phonenumbers

from .audit_chain import AuditKeyError, keys_from_settings
from .channels.contacts import ContactError, email_address
from .channels.sms import SMS_PROVIDERS
from .channels.smtp import SECURITY_PORTS
from .channels.webpush import vapid_key, vapid_public_key

DEFAULT_DATABASE_URL = "sqlite:///outcomes.sqlite3"  # relative: lives in the instance folder
DEVELOPMENT_SECRET_KEY = "development-only-secret-key-do-not-use-in-production"


class ConfigurationError(RuntimeError):
    """The app refuses to start with unsafe or unusable settings."""


def normalise_database_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL whichever spelling of the URL was given."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _positive(environ: Mapping[str, str], name: str, default: int) -> int:
    value = environ.get(name, str(default)).strip()
    if not value.isdigit() or int(value) < 1:
        raise ConfigurationError(f"{name} must be a whole number above 0, not {value!r}")
    return int(value)


def _choice(environ: Mapping[str, str], name: str, choices: Mapping[str, Any] | set[str],
            default: str) -> str:
    value = environ.get(name, default).strip().lower()
    if value not in choices:
        raise ConfigurationError(f"{name} must be one of {', '.join(sorted(choices))}, "
                                 f"not {value!r}")
    return value


def _date(environ: Mapping[str, str], name: str, default: str) -> dt.date:
    value = environ.get(name, default).strip()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ConfigurationError(f"{name} must be a date as YYYY-MM-DD, not {value!r}") from None


def settings_from_environment(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """Read the app's settings from environment variables.

    ``OUTCOMES_ENV`` is ``production`` (the default: safe settings unless told otherwise) or
    ``development``.
    """
    environment = environ.get("OUTCOMES_ENV", "production").strip().lower()
    if environment not in {"production", "development"}:
        raise ConfigurationError(
            f"OUTCOMES_ENV must be 'production' or 'development', not {environment!r}"
        )
    production = environment == "production"
    smtp_security = _choice(environ, "SMTP_SECURITY", SECURITY_PORTS, "starttls")
    secret_key = environ.get("SECRET_KEY") or (None if production else DEVELOPMENT_SECRET_KEY)
    return {
        "OUTCOMES_ENV": environment,
        "SECRET_KEY": secret_key,
        # Earlier SECRET_KEYs, comma-separated, still honoured after a rotation: sessions they
        # signed, and authenticator secrets they sealed (re-sealed at each owner's next code).
        "SECRET_KEY_FALLBACKS": [key.strip() for key in
                                 environ.get("SECRET_KEY_FALLBACKS", "").split(",")
                                 if key.strip()],
        "DATABASE_URL": normalise_database_url(
            environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
        ),
        # Seconds to wait for the database before a page answers "try again in a minute"
        # (docs/outages.md): to open a connection, for one statement (PostgreSQL cancels it),
        # for a statement of a CSV export (they read everything), and for a free connection.
        "DATABASE_CONNECT_TIMEOUT": _positive(environ, "DATABASE_CONNECT_TIMEOUT", 3),
        "DATABASE_STATEMENT_TIMEOUT": _positive(environ, "DATABASE_STATEMENT_TIMEOUT", 15),
        "DATABASE_EXPORT_STATEMENT_TIMEOUT": _positive(
            environ, "DATABASE_EXPORT_STATEMENT_TIMEOUT", 300),
        "DATABASE_POOL_TIMEOUT": _positive(environ, "DATABASE_POOL_TIMEOUT", 5),
        # Connections each process keeps open (PostgreSQL; up to 10 more in a burst): at
        # least the worker's threads, or requests beyond it wait DATABASE_POOL_TIMEOUT.
        "DATABASE_POOL_SIZE": _positive(environ, "DATABASE_POOL_SIZE", 5),
        "SESSION_COOKIE_SECURE": production and not _flag(environ.get("INSECURE_COOKIES")),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": production and not _flag(environ.get("INSECURE_COOKIES")),
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        # Sessions end after this long without a request (staff sooner: their screens show
        # many patients, often on shared computers) and, however active, this long after
        # sign-in. The numbers are local policy; the cookie itself lasts the absolute cap, so
        # a form sent after an idle timeout still says whose it was (auth/sessions.py).
        "STAFF_IDLE_MINUTES": _positive(environ, "STAFF_IDLE_MINUTES", 15),
        "PATIENT_IDLE_MINUTES": _positive(environ, "PATIENT_IDLE_MINUTES", 30),
        "SESSION_MAX_HOURS": _positive(environ, "SESSION_MAX_HOURS", 12),
        #: How long answers sent after a session ended wait for the patient to sign in again.
        "HELD_ANSWERS_MINUTES": _positive(environ, "HELD_ANSWERS_MINUTES", 60),
        # Seconds without a heartbeat after which a job worker counts as dead and its run is
        # retried by another (outcomes/jobs/queue.py, docs/jobs.md).
        "JOBS_STALLED_SECONDS": _positive(environ, "JOBS_STALLED_SECONDS", 30),
        # Behind a reverse proxy, how many proxies to trust for the client address in
        # X-Forwarded-For (0 = none: use the socket's peer address).
        "TRUSTED_PROXIES": int(environ.get("TRUSTED_PROXIES", "0")),
        # Public base URL of invitation links (empty: the host the request came to) and of
        # the links in reminders and alert notifications, which the worker sends outside any
        # request (empty: it sends none; services/deliveries.py).
        "PUBLIC_BASE_URL": environ.get("PUBLIC_BASE_URL", "").strip().rstrip("/"),
        "INVITATION_VALID_DAYS": 7,
        # The dates a form or an export filter may carry, a local policy (no source gives
        # these numbers): nothing before EARLIEST_RECORD_DATE, a round date older than any
        # ketamine-clinic record (move it back if paper records go further); nothing that
        # happened after today at the clinic; bookings (next infusion, course start) at most
        # BOOKING_HORIZON_DAYS ahead.
        "EARLIEST_RECORD_DATE": _date(environ, "EARLIEST_RECORD_DATE", "2000-01-01"),
        "BOOKING_HORIZON_DAYS": _positive(environ, "BOOKING_HORIZON_DAYS", 365),
        # Static URLs carry a hash of the file's content, so browsers may keep them a year.
        "STATIC_MAX_AGE": int(environ.get("STATIC_MAX_AGE", str(365 * 24 * 3600))),
        # argon2id parameters; the defaults (RFC 9106 low-memory profile: 64 MiB, t=3, p=4)
        # are above the OWASP ASVS 5 minimum (19 MiB, t=2, p=1).
        "ARGON2_TIME_COST": int(environ.get("ARGON2_TIME_COST", "3")),
        "ARGON2_MEMORY_COST_KIB": int(environ.get("ARGON2_MEMORY_COST_KIB", str(64 * 1024))),
        "ARGON2_PARALLELISM": int(environ.get("ARGON2_PARALLELISM", "4")),
        "WTF_CSRF_TIME_LIMIT": None,  # tied to the session instead: a long form must not fail
        # Over HTTPS a POST must also come from a page of this site (its Referer; see
        # Referrer-Policy in web.SECURITY_HEADERS): the token alone would accept a form that a
        # network attacker planted over plain HTTP with a session cookie of their own.
        "WTF_CSRF_SSL_STRICT": True,
        # No form needs more; a larger body is refused before it is read.
        "MAX_CONTENT_LENGTH": 1024 * 1024,
        # The audit chain's keys, "keyid:secret,..." oldest first: the last signs new rows and
        # checkpoints, the older ones verify what they signed (docs/audit.md). Outside
        # production an unset value means a key derived from SECRET_KEY, named "development".
        "AUDIT_KEYS": environ.get("AUDIT_KEYS", ""),
        # The append-only file of signed checkpoints of the chain's head, written by
        # `flask audit checkpoint` and read by `flask audit verify`; keep it off the database.
        "AUDIT_CHECKPOINT_PATH": environ.get("AUDIT_CHECKPOINT_PATH", ""),
        # Where the sign-in limits are counted. memory:// counts in each worker process
        # alone (fine for one worker); several workers or hosts need a shared store such as
        # redis://host:6379/0, or each of them allows the full limit (a warning at start).
        "RATELIMIT_STORAGE_URI": environ.get("RATELIMIT_STORAGE_URI", "memory://"),
        "RATELIMIT_KEY_PREFIX": environ.get("RATELIMIT_KEY_PREFIX", "outcomes"),
        # While the shared store is unreachable, count in memory (per worker) rather than
        # refuse every sign-in with an error; it is tried again and used once it is back.
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        "RATELIMIT_SWALLOW_ERRORS": True,
        "RATELIMIT_HEADERS_ENABLED": True,
        #: Sign-in and invitation attempts allowed per client address.
        "SIGN_IN_RATE_LIMIT": environ.get("SIGN_IN_RATE_LIMIT", "10 per minute; 100 per hour"),
        #: Wrong passwords allowed per account (whatever the address) from devices that have
        #: not signed in to it before; a device that has has a budget of its own, so an attack
        #: on an account slows the attacker without locking its owner out.
        "ACCOUNT_SIGN_IN_LIMIT": environ.get("ACCOUNT_SIGN_IN_LIMIT",
                                             "5 per minute; 20 per hour"),
        # Clinicians and admins sign in with a second factor (an authenticator app's code),
        # enrolled at their first sign-in. Unset, it is on in production (which refuses it
        # off) and off in development, so the demo's printed logins work with a password
        # alone (staff_mfa_required).
        "STAFF_MFA_REQUIRED": (_flag(environ["STAFF_MFA_REQUIRED"])
                               if environ.get("STAFF_MFA_REQUIRED", "").strip() else None),
        #: Wrong second-factor codes allowed per account (each client address also counts
        #: against SIGN_IN_RATE_LIMIT). The daily cap: the hourly limit alone lets about
        #: 175,000 guesses a year through, even odds of finding a six-digit code (three are
        #: valid at once, for clock drift); 50 a day keeps it near 5 per cent.
        "MFA_CODE_LIMIT": environ.get("MFA_CODE_LIMIT", "5 per minute; 20 per hour; 50 per day"),
        # Notification channels (docs/notifications.md): each is off until the setting that
        # names its server or account is set, and then needs the rest of its group.
        "SMTP_HOST": environ.get("SMTP_HOST", "").strip(),
        "SMTP_SECURITY": smtp_security,
        "SMTP_PORT": _positive(environ, "SMTP_PORT", SECURITY_PORTS[smtp_security]),
        "SMTP_USERNAME": environ.get("SMTP_USERNAME", ""),
        "SMTP_PASSWORD": environ.get("SMTP_PASSWORD", ""),
        "SMTP_FROM": environ.get("SMTP_FROM", "").strip(),
        "VAPID_PRIVATE_KEY": environ.get("VAPID_PRIVATE_KEY", "").strip(),
        "VAPID_PUBLIC_KEY": environ.get("VAPID_PUBLIC_KEY", "").strip(),
        "VAPID_SUBJECT": environ.get("VAPID_SUBJECT", "").strip(),
        "SMS_PROVIDER": _choice(environ, "SMS_PROVIDER", SMS_PROVIDERS, "twilio"),
        "TWILIO_ACCOUNT_SID": environ.get("TWILIO_ACCOUNT_SID", "").strip(),
        "TWILIO_AUTH_TOKEN": environ.get("TWILIO_AUTH_TOKEN", "").strip(),
        "TWILIO_FROM_NUMBER": environ.get("TWILIO_FROM_NUMBER", "").strip(),
        "TWILIO_API_BASE_URL": environ.get("TWILIO_API_BASE_URL",
                                           "https://api.twilio.com").strip().rstrip("/"),
        # Seconds each send waits for the mail server, push service or SMS provider (to
        # connect, and for each answer) before it counts as a temporary failure.
        "NOTIFICATION_TIMEOUT": _positive(environ, "NOTIFICATION_TIMEOUT", 10),
        # The country a phone number typed without its +country code is read in.
        "PHONE_REGION": environ.get("PHONE_REGION", "US").strip().upper(),
        # Development's outbox: messages of the channels left off are taken as sent and never
        # leave the machine (channels/outbox.py). Refused in production.
        "NOTIFICATION_OUTBOX": _flag(environ.get("NOTIFICATION_OUTBOX",
                                                 "no" if production else "yes")),
    }


def check_production_settings(config: Mapping[str, Any]) -> None:
    """Refuse to run with unusable audit keys or notification settings, and production with
    a missing or development secret or audit key, or weak hashing."""
    check_notification_settings(config)
    if config.get("TESTING") or config.get("OUTCOMES_ENV") != "production":
        check_audit_keys(config)
        return
    secret = config.get("SECRET_KEY")
    if not secret:
        raise ConfigurationError("SECRET_KEY must be set in production")
    if secret == DEVELOPMENT_SECRET_KEY or len(secret) < 32:
        raise ConfigurationError(
            "SECRET_KEY is a development key or shorter than 32 characters; "
            "generate one with: python -c 'import secrets; print(secrets.token_hex(32))'"
        )
    if (config["ARGON2_MEMORY_COST_KIB"] < 19 * 1024 or config["ARGON2_TIME_COST"] < 2
            or config["ARGON2_PARALLELISM"] < 1):
        raise ConfigurationError("argon2 parameters are below the OWASP ASVS minimum")
    if not config.get("PUBLIC_BASE_URL", "").startswith("https://"):
        raise ConfigurationError(
            "PUBLIC_BASE_URL must be set to the https:// address patients use; invitation "
            "links are built from it, never from the request's Host header")
    if not staff_mfa_required(config):
        raise ConfigurationError("STAFF_MFA_REQUIRED cannot be turned off in production: "
                                 "clinicians and admins sign in with a second factor (unset it)")
    if config.get("NOTIFICATION_OUTBOX"):
        raise ConfigurationError("NOTIFICATION_OUTBOX is for development: in production a "
                                 "message taken as sent must have left (unset it)")
    check_audit_keys(config)


def staff_mfa_required(config: Mapping[str, Any]) -> bool:
    """Whether clinicians and admins must sign in with a second factor: as set, or when
    unset, in production only."""
    setting = config.get("STAFF_MFA_REQUIRED")
    return config.get("OUTCOMES_ENV") == "production" if setting is None else bool(setting)


def check_audit_keys(config: Mapping[str, Any]) -> None:
    """Refuse a malformed ``AUDIT_KEYS`` anywhere, and its absence in production."""
    try:
        keys_from_settings(config)
    except AuditKeyError as error:
        raise ConfigurationError(str(error)) from None


#: The settings of each notification channel: the first switches the channel on, and then
#: the others it names are needed too.
SMTP_GROUP = ("SMTP_HOST", "SMTP_FROM")
VAPID_GROUP = ("VAPID_PRIVATE_KEY", "VAPID_SUBJECT")
TWILIO_GROUP = ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER")
#: A Twilio account SID: "AC" and 32 hexadecimal digits.
TWILIO_ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")


def check_notification_settings(config: Mapping[str, Any]) -> None:
    """Refuse half-set or malformed channel settings, naming the setting (never a secret's
    value), so a clinic finds out at start rather than from a reminder that never came."""
    if config["PHONE_REGION"] not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigurationError(
            f"PHONE_REGION must be a two-letter country code such as US or GB, not "
            f"{config['PHONE_REGION']!r}")
    if config["SMTP_SECURITY"] not in SECURITY_PORTS:
        raise ConfigurationError(f"SMTP_SECURITY must be one of "
                                 f"{', '.join(sorted(SECURITY_PORTS))}")
    if not 0 < config["SMTP_PORT"] < 65536:
        raise ConfigurationError("SMTP_PORT must be a port number (1 to 65535)")
    if _group_set(config, SMTP_GROUP, also=("SMTP_USERNAME", "SMTP_PASSWORD")):
        _check_smtp(config)
    if _group_set(config, VAPID_GROUP, also=("VAPID_PUBLIC_KEY",)):
        _check_vapid(config)
    base = urlsplit(config.get("PUBLIC_BASE_URL", ""))
    if base.geturl() and (base.scheme not in {"https", "http"} or not base.hostname
                          or base.query or base.fragment):
        raise ConfigurationError("PUBLIC_BASE_URL must be the address people open Outcomes "
                                 f"at, such as https://outcomes.example.org, not {base.geturl()!r}")
    if config["SMS_PROVIDER"] not in SMS_PROVIDERS:
        raise ConfigurationError(f"SMS_PROVIDER must be one of "
                                 f"{', '.join(sorted(SMS_PROVIDERS))}")
    if _group_set(config, TWILIO_GROUP):
        _check_twilio(config)


def _group_set(config: Mapping[str, Any], group: tuple[str, ...],
               also: tuple[str, ...] = ()) -> bool:
    """Whether a channel's settings are given: all of ``group`` (and maybe ``also``), or
    none of either; anything between is refused."""
    given = [name for name in (*group, *also) if config.get(name)]
    if not given:
        return False
    missing = [name for name in group if not config.get(name)]
    if missing:
        raise ConfigurationError(
            f"{' and '.join(given)} {'is' if len(given) == 1 else 'are'} set but "
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not: set "
            f"{'it' if len(missing) == 1 else 'them'} too, or unset "
            f"{'it' if len(given) == 1 else 'them'} to leave the channel off")
    return True


def _check_smtp(config: Mapping[str, Any]) -> None:
    try:
        email_address(config["SMTP_FROM"])
    except ContactError as error:
        raise ConfigurationError(f"SMTP_FROM: {error}") from None
    if bool(config["SMTP_USERNAME"]) != bool(config["SMTP_PASSWORD"]):
        raise ConfigurationError("SMTP_USERNAME and SMTP_PASSWORD are set together or not at "
                                 "all")
    if config["SMTP_USERNAME"] and config["SMTP_SECURITY"] == "none":
        raise ConfigurationError("SMTP_SECURITY=none would send SMTP_PASSWORD unencrypted: "
                                 "use starttls or tls")


def _check_vapid(config: Mapping[str, Any]) -> None:
    try:
        vapid_key(config["VAPID_PRIVATE_KEY"])
    except ValueError as error:
        raise ConfigurationError(f"{error} (docs/notifications.md says how to make a key "
                                 "pair)") from None
    if config["VAPID_PUBLIC_KEY"] and config["VAPID_PUBLIC_KEY"] != vapid_public_key(config):
        raise ConfigurationError("VAPID_PUBLIC_KEY is not VAPID_PRIVATE_KEY's public key "
                                 "(leave it unset: it is derived from the private key)")
    subject = config["VAPID_SUBJECT"]
    contact = subject.removeprefix("mailto:")
    try:
        if contact == subject:
            url = urlsplit(subject)
            valid = url.scheme == "https" and bool(url.hostname)
        else:
            valid = bool(email_address(contact))
    except ContactError:
        valid = False
    if not valid:
        raise ConfigurationError(
            "VAPID_SUBJECT must say how push services can reach the clinic: a mailto: "
            f"address or an https:// page, not {subject!r}")


def _check_twilio(config: Mapping[str, Any]) -> None:
    if not TWILIO_ACCOUNT_SID.fullmatch(config["TWILIO_ACCOUNT_SID"]):
        raise ConfigurationError("TWILIO_ACCOUNT_SID must be AC followed by 32 hexadecimal "
                                 "digits (Twilio's console shows it)")
    try:
        sender = phonenumbers.parse(config["TWILIO_FROM_NUMBER"])
        valid = phonenumbers.is_valid_number(sender)
    except phonenumbers.NumberParseException:
        valid = False
    if not valid:
        raise ConfigurationError("TWILIO_FROM_NUMBER must be the account's number in E.164 "
                                 f"(+14155550123), not {config['TWILIO_FROM_NUMBER']!r}")
    url = urlsplit(config["TWILIO_API_BASE_URL"])
    if url.scheme != "https" or not url.hostname:
        raise ConfigurationError("TWILIO_API_BASE_URL must be an https:// address "
                                 "(the auth token goes with every request)")
