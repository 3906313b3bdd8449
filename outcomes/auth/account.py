"""A signed-in person's own account: their sessions (list, end one, end all others, sign out everywhere) and their password (issue 12 items 3 and 5)."""
from .views import bp  # noqa: F401  (its routes join the blueprint)
