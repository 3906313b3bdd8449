"""Signing in and out, invitations, reminders' questionnaire links and password resets: one
blueprint (views.py), whose link routes and link sessions live in links.py, and whose reset
routes live in resets.py."""
from . import links, resets  # noqa: F401  (their routes join the blueprint)
from .views import bp

__all__ = ["bp"]
