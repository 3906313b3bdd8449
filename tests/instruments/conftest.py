"""Shared helper: run ``python -m instruments`` the way a user or script would."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def run_cli():
    """Run the command line with these arguments; return the completed process (text)."""
    def run(*args):
        return subprocess.run([sys.executable, "-m", "instruments", *args], cwd=REPO,
                              capture_output=True, text=True, timeout=60)
    return run
