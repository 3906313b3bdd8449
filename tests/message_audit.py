"""Every message the app builds to send in a test run is read at the end of the run (issue
11: "a test reads every message produced in the suite"): each must say one of the fixed
wordings of ``services.deliveries.WORDING`` — which name no score, answer, questionnaire,
condition, drug or person — with a link that carries no data but a token after ``#``.

Messages built in this process are read: the app's and the jobs' as the tests run them. The
worker processes some tests start (tests/worker_processes.py) run the same code, and their
tests read what reaches the SMTP server themselves.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from outcomes.channels import Message
from outcomes.services import deliveries

#: What the run's deliveries built, in order.
PRODUCED: list[Message] = []
TOKEN = re.compile(r"[A-Za-z0-9_-]*")


@contextmanager
def recording_every_message() -> Iterator[None]:
    """Record each message ``services.deliveries`` builds while the block runs."""
    build = deliveries.message_for

    def recorded(*args, **kwargs) -> Message:
        message = build(*args, **kwargs)
        PRODUCED.append(message)
        return message

    deliveries.message_for = recorded
    try:
        yield
    finally:
        deliveries.message_for = build


def unsound(message: Message) -> str | None:
    """What is wrong with ``message``, or None: it says a fixed wording and links to a page
    with no query and at most a token."""
    if (message.subject, message.body) not in {(w.subject, w.body)
                                               for w in deliveries.WORDING.values()}:
        return f"not one of the fixed wordings: {message.subject!r}"
    link = urlsplit(message.link)
    if link.query or not TOKEN.fullmatch(link.fragment):
        return f"its link carries more than a token: {message.subject!r}"
    return None


def unsound_messages() -> list[str]:
    return [problem for message in PRODUCED if (problem := unsound(message)) is not None]
