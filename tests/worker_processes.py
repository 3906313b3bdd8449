"""``flask worker`` processes for the tests (a plain helper module with a fixture, as
channel_servers.py is): started on the test's database with its output in a log file, and
killed at the end if still running."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .conftest import base_config
from .helpers import empty_the_queue

ROOT = Path(__file__).resolve().parents[1]
#: The longest a worker may take to start, do what a test waits for, or stop (a loaded
#: machine starts Python slowly).
PATIENCE = 30.0


class Worker:
    """A ``flask worker`` process whose output goes to a log file."""

    def __init__(self, app: str, environment: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "flask", "--app", app, "worker"], cwd=ROOT,
                env=environment, stdout=output, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text()

    def stop(self, signal_number: int = signal.SIGTERM) -> int:
        """Send ``signal_number`` and wait for the process to end; its exit status."""
        self.process.send_signal(signal_number)
        try:
            return self.process.wait(timeout=PATIENCE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"the worker did not stop:\n{self.output()}") from None


def wait_for(condition: Callable[[], object], what: str, workers: list[Worker]) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        for worker in workers:
            assert worker.process.poll() is None, f"a worker ended:\n{worker.output()}"
        assert time.monotonic() < deadline, f"no {what} after {PATIENCE} s:\n" + "\n".join(
            worker.output() for worker in workers)
        time.sleep(0.2)


@pytest.fixture
def workers(database_url: str, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Starts workers on the test's database (an empty queue on PostgreSQL); any still
    running at the end are killed."""
    if database_url.startswith("postgresql"):
        empty_the_queue(database_url)
    started: list[Worker] = []
    settings = {key: str(value) for key, value in base_config(database_url).items()
                if key in {"OUTCOMES_ENV", "SECRET_KEY", "AUDIT_KEYS", "DATABASE_URL"}}

    def start(app: str = "tests.worker_jobs:worker_app", **environment: str) -> Worker:
        worker = Worker(app, {**os.environ, **settings, **environment},
                        tmp_path / f"worker-{len(started) + 1}.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait()
