"""A patient's new contact address, confirmed by the link sent to it before it is used (issue 12 item 5)."""
from .views import bp  # noqa: F401  (its routes join the blueprint)
