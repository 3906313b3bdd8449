"""Requests raced against each other, for the tests of what two people doing one thing at the
same moment leaves behind. Only PostgreSQL runs transactions side by side: SQLite runs one at
a time, so there is no race to lose there."""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import pytest

Result = TypeVar("Result")


def skip_unless_postgresql(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one transaction at a time: there is no race to lose")


def at_once(*calls: Callable[[], Result]) -> list[Result]:
    """Run ``calls`` in threads released together; their results, in the order they ended
    (one that raised has none, so the caller's count of results shows it)."""
    start = threading.Barrier(len(calls))
    results: list[Result] = []

    def run(call: Callable[[], Result]) -> None:
        start.wait()
        results.append(call())

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
