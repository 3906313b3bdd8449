"""Signing in and out, invitations, reminders' questionnaire links and password resets: one
blueprint (views.py), whose link routes and link sessions live in links.py, whose reset
routes live in resets.py, whose staff invitation routes live in staff_invitations.py, whose
own-account routes (sessions, password) live in account.py, passkeys in passkeys.py, and a
patient's contact confirmation in contacts.py."""
from . import (  # noqa: F401  (their routes join it)
    account,
    contacts,
    links,
    mfa,
    passkeys,
    resets,
    staff_invitations,
)
from .views import bp

__all__ = ["bp"]
