"""Views stay thin (issue 10): each blueprint's routes live in its own package, and a view
reads no record by itself: the records a URL names come through the loaders of
outcomes/auth/access.py (one per kind, 404 for what is not the user's to see), everything
else through a service. The access matrix (test_access.py) shows the loaders answer 404."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "outcomes"
#: The blueprints' modules: each blueprint is the package (or module) of its name.
BLUEPRINTS = ("auth", "patient", "clinician", "exports", "health")
#: What the session may be asked for directly in a view's module, and why.
DIRECT_READS = {
    ("health.py", "execute"): "the liveness check pings the database with SELECT 1",
}
READS = {"get", "scalar", "scalars", "execute", "query"}


def test_each_blueprints_routes_live_in_its_own_package(app):
    misplaced = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        blueprint = rule.endpoint.split(".", 1)[0]
        module = app.view_functions[rule.endpoint].__module__
        if module != f"outcomes.{blueprint}" and not module.startswith(f"outcomes.{blueprint}."):
            misplaced.append(f"{rule.endpoint} ({rule.rule}) is defined in {module}")
    assert {rule.endpoint.split(".", 1)[0] for rule in app.url_map.iter_rules()} == \
        {*BLUEPRINTS, "static"}
    assert not misplaced, "\n".join(misplaced)


def direct_reads(source: str) -> list[tuple[int, str]]:
    """Each line of ``source`` that asks the database session for rows itself, and how."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in READS and isinstance(node.func.value, ast.Attribute)
                and node.func.value.attr == "session"
                and isinstance(node.func.value.value, ast.Name)
                and node.func.value.value.id == "db"):
            found.append((node.lineno, node.func.attr))
    return found


def test_the_check_finds_a_direct_read():
    source = ("db.session.get(Patient, 1)\ndb.session.scalar(query)\nsession.get('key')\n"
              "records.clinic_patient(db.session, 1, 2)\ndb.session.execute(query)\n")
    assert direct_reads(source) == [(1, "get"), (2, "scalar"), (5, "execute")]


def view_modules() -> list[Path]:
    return sorted(path for name in BLUEPRINTS
                  for path in ([PACKAGE / f"{name}.py"] if (PACKAGE / f"{name}.py").exists()
                               else (PACKAGE / name).rglob("*.py")))


def test_views_read_records_only_through_loaders_and_services():
    offences = [f"{path.relative_to(PACKAGE.parent)}:{line}: db.session.{how}"
                for path in view_modules()
                for line, how in direct_reads(path.read_text())
                if (path.relative_to(PACKAGE).as_posix(), how) not in DIRECT_READS]
    assert view_modules() and not offences, (
        "a view reading the database itself (load a record a URL names with a loader of "
        "outcomes/auth/access.py, anything else through a service):\n" + "\n".join(offences))
