"""The layers of the house (issue 10): the import contracts hold, each would catch the import
that breaks it, and a patient's summary is recomputed once per transaction, at its commit."""
from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import grimp
import pytest
from importlinter import api
from importlinter.application.use_cases import lint_imports
from importlinter.contracts.acyclic_siblings import AcyclicSiblingsContract
from importlinter.contracts.forbidden import ForbiddenContract
from sqlalchemy import select
from sqlalchemy.orm import Session

from outcomes.models import MeasureSummary, PatientSummary
from outcomes.services import assessments, courses, plans, summaries
from outcomes.services.alerts import acknowledge_alert
from outcomes.services.audit import Actor

from .conftest import INFUSION_VALUES

CONFIG = str(Path(__file__).resolve().parents[1] / ".importlinter")

#: For each contract (by its id in .importlinter), one import that breaks it.
BREAKING_IMPORTS = {
    "engine": ("instruments.scoring", "outcomes.models"),
    "models": ("outcomes.models", "outcomes.services.summaries"),
    "services": ("outcomes.services.dashboard", "outcomes.clinician.views"),
    "jobs": ("outcomes.jobs.scheduled", "outcomes.clinician.views"),
    "channels": ("outcomes.channels.smtp", "outcomes.services.alerts"),
    # records <- summaries already: back again is the cycle of before issue 10.
    "acyclic": ("outcomes.services.records", "outcomes.services.summaries"),
}
CONTRACT_TYPES = {"forbidden": ForbiddenContract, "acyclic_siblings": AcyclicSiblingsContract}


def test_the_import_contracts_hold(capsys):
    passed = lint_imports(CONFIG, cache_dir=None, no_logo=True, is_debug_mode=True)
    report = capsys.readouterr().out
    contracts = len(api.read_configuration(CONFIG)["contracts_options"])
    assert passed and f"Contracts: {contracts} kept, 0 broken." in report, report


def import_graph() -> grimp.ImportGraph:
    return grimp.build_graph("instruments", "outcomes", cache_dir=None)


@pytest.mark.parametrize("contract_id", sorted(BREAKING_IMPORTS))
def test_each_contract_catches_the_import_that_breaks_it(contract_id):
    configuration = api.read_configuration(CONFIG)
    options = next(o for o in configuration["contracts_options"] if o["id"] == contract_id)
    contract = CONTRACT_TYPES[options["type"]](
        name=options["name"], session_options=configuration["session_options"],
        contract_options=options)
    assert contract.check(import_graph(), verbose=False).kept
    graph = import_graph()
    importer, imported = BREAKING_IMPORTS[contract_id]
    graph.add_import(importer=importer, imported=imported)
    assert not contract.check(graph, verbose=False).kept


@pytest.fixture
def recomputes(monkeypatch):
    """The patient ids whose summary is recomputed, one entry per recompute."""
    seen: list[int] = []
    recompute = summaries.refresh

    def counted(session, patient_id, now=None):
        seen.append(patient_id)
        return recompute(session, patient_id, now)

    monkeypatch.setattr(summaries, "refresh", counted)
    return seen


def test_one_transaction_touching_a_patient_often_recomputes_the_summary_once(
        app, session, world, factory, recomputes):
    course = factory.course(world.patient)
    recomputes.clear()
    nurse, patient = Actor(user=world.clinician), world.patient
    with app.app_context():
        # Six writers, one transaction: an infusion, a plan change, two questionnaires (one
        # opening an alert, its acknowledgement) and the course's next booking.
        given = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2)
        courses.record_infusion(session, nurse, course,
                                {**INFUSION_VALUES, "administered_at": given})
        plans.update_plan(session, nurse, patient, {("gad7", "recurring"): (True, 14, 12, 28)})
        assessments.submit_assessment(session, Actor(user=world.patient_user), patient,
                                      "pcl5", [2] * 20, uuid.uuid4().hex)
        disclosure = assessments.submit_assessment(session, Actor(user=world.patient_user),
                                                   patient, "phq9", [1] * 9, uuid.uuid4().hex)
        acknowledge_alert(session, nurse, disclosure.alerts[0], "Called; safe tonight.")
        courses.update_course(session, nurse, course, status="active", planned_infusions=8,
                              next_infusion_at=None)
        assert recomputes == []  # nothing is recomputed before the commit
        session.commit()
    assert recomputes == [patient.id]
    summary = session.get(PatientSummary, patient.id)
    session.refresh(summary)
    latest = dict(session.execute(select(MeasureSummary.measure, MeasureSummary.latest)
                                  .where(MeasureSummary.patient_id == patient.id)).all())
    assert (summary.infusions_done, summary.infusions_planned, latest,
            summary.open_alerts) == (1, 8, {"PCL-5": 40, "PHQ-9": 9}, 0)


def test_a_rollback_forgets_the_patients_touched(app, session, world, recomputes):
    with app.app_context():
        submission = assessments.submit_assessment(
            session, Actor(user=world.patient_user), world.patient, "phq9", [1] * 9,
            uuid.uuid4().hex)
        assert submission.alerts
        session.rollback()
        session.commit()
    assert recomputes == []


def test_a_savepoint_released_waits_for_the_commit(app, session, world, recomputes):
    with app.app_context():
        with session.begin_nested():
            summaries.touch(session, world.patient.id)
        with session.begin_nested():
            summaries.touch(session, world.other_patient.id)
        assert recomputes == []
        session.commit()
    assert sorted(recomputes) == sorted([world.patient.id, world.other_patient.id])


def test_the_summary_is_written_before_the_audit_chain_is_extended():
    # Both run before a commit; a summary written after the chain was extended could not have
    # its audit rows chained in the same transaction.
    listeners = [f"{f.__module__}.{f.__name__}" for f in Session().dispatch.before_commit]
    assert listeners.index("outcomes.services.summaries._refresh_touched") < \
        listeners.index("outcomes.services.audit._write_queued_events")
