"""The clinician's side, one blueprint whose routes all live here: the patient list, a
patient's record, enrolment, paper forms, alerts and plans (views.py); treatment courses and
the infusion log (courses.py); the clinic's notification settings and development's outbox
(settings.py); the clinic's staff, for its admins (staff.py); a patient's administrative
details, discharge and access (patients.py)."""
from . import courses  # noqa: F401  (its routes join the blueprint)
from . import patients  # noqa: F401  (its routes join the blueprint)
from . import settings  # noqa: F401  (its routes join the blueprint)
from . import staff  # noqa: F401  (its routes join the blueprint)
from .views import bp

__all__ = ["bp"]
