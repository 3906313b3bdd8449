"""Signing in and out, invitations, reminders' questionnaire links and password resets: one
blueprint (views.py), whose link routes and link sessions live in links.py, whose reset
routes live in resets.py, and whose staff invitation routes live in staff_invitations.py."""
from . import links, mfa, resets, staff_invitations  # noqa: F401  (their routes join it)
from .views import bp

__all__ = ["bp"]
