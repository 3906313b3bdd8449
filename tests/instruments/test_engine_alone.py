"""``pytest tests/instruments`` needs the engine alone: no Flask, no SQLAlchemy, no app."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
APP_PACKAGES = ("flask", "flask_login", "sqlalchemy", "outcomes")
# Collect every engine test in a fresh interpreter, as `pytest tests/instruments` does, then
# list the app's packages that got imported on the way (conftest files and test modules).
CHECK = f"""
import sys, pytest
status = pytest.main(["-q", "-p", "no:cacheprovider", "--collect-only", "tests/instruments"])
print(sorted({{name.split(".")[0] for name in sys.modules}} & set({APP_PACKAGES!r})))
sys.exit(status)
"""


def test_collecting_the_engine_tests_imports_nothing_of_the_app():
    result = subprocess.run([sys.executable, "-c", CHECK], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout[-2000:]
