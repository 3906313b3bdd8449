from . import settings  # noqa: F401  (its routes join the blueprint)
