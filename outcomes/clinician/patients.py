"""A patient's administrative details, for the clinic: edit name, identifier and contacts (versioned, with a reason), reassign the clinician, discharge and re-admit, re-issue access (issue 12 item 4)."""
from .views import bp  # noqa: F401  (its routes join the blueprint)
