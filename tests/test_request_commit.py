"""One commit decision per request (outcomes/web.py): the request's end commits on success,
rolls back on an error status, and keeps a refused request's writes only when its view asked
(keep_writes_despite_refusal) — then even if the page fails, but never when the database
failed. No view or form commits by itself
(the CLI's commands and the scheduled jobs are no request: they commit their own work)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
from flask import abort
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from outcomes.extensions import db
from outcomes.models import AuditEvent
from outcomes.services import audit
from outcomes.web import current_actor, keep_writes_despite_refusal

PACKAGE = Path(__file__).resolve().parent.parent / "outcomes"
#: The web layer: the blueprints' views, the forms and the template helpers. (Writers flush
#: and leave the commit to the request too; a job's service commits its own steps.)
REQUEST_CODE = ("auth", "patient", "clinician", "exports", "health.py", "forms.py",
                "templating.py")


def commits(source: str) -> list[int]:
    """The lines of ``source`` that call a ``commit``, on whatever object."""
    return [node.lineno for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "commit"]


def test_the_check_finds_a_commit():
    source = "db.session.commit()\nsession.commit()\nflush()\ndb.session.flush()\ncommit\n"
    assert commits(source) == [1, 2]


def request_modules() -> list[Path]:
    return sorted(path for name in REQUEST_CODE
                  for path in ([PACKAGE / name] if name.endswith(".py")
                               else (PACKAGE / name).rglob("*.py")))


def test_no_view_or_form_commits():
    offences = [f"{path.relative_to(PACKAGE.parent)}:{line}" for path in request_modules()
                for line in commits(path.read_text())]
    assert len(request_modules()) > len(REQUEST_CODE) and not offences, (
        "a commit outside web.py's end of request (a view calls keep_writes_despite_refusal "
        "to keep a refused request's writes):\n" + "\n".join(offences))


def test_the_request_hook_holds_the_only_commit_of_web_py():
    assert len(commits((PACKAGE / "web.py").read_text())) == 1


@pytest.mark.parametrize(("status", "keep", "kept"), [
    (200, False, True),
    (303, False, True),
    (400, False, False),
    (422, False, False),
    (401, True, True),
    (422, True, True),
    (500, False, False),
    # What the view asked to keep stands although the page then failed: one disclosure
    # never loses its alert to a page that could not be drawn.
    (500, True, True),
    (503, True, False),  # the database failed: nothing is kept, whatever the view asked
])
def test_a_requests_writes_stand_or_fall_with_its_answer(app, session, status, keep, kept):
    @app.get("/test-write")
    def write():
        audit.record(db.session, current_actor(), "test.write")
        if keep:
            keep_writes_despite_refusal()
        if status == 500:
            raise RuntimeError("after the view asked to keep its writes")
        if status == 503:
            raise OperationalError("SELECT 1", {}, Exception("the database went away"))
        if status >= 400:
            abort(status)
        return "", status

    assert app.test_client().get("/test-write").status_code == status
    written = session.scalars(select(AuditEvent).where(AuditEvent.action == "test.write")).all()
    assert len(written) == (1 if kept else 0)
