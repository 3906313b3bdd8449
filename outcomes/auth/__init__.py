"""Signing in and out, invitations, and reminders' questionnaire links: one blueprint
(views.py), whose link routes and link sessions live in links.py."""
from . import links  # noqa: F401  (its routes join the blueprint)
from .views import bp

__all__ = ["bp"]
