"""Submitting questionnaires, scoring them, and raising the alerts their answers call for."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import instruments

from ..models import Alert, Assessment, AssessmentAnswer, Patient, utcnow
from . import audit, summaries
from .audit import Actor


ALREADY_CORRECTED = ("This record has already been corrected. Correct the latest version "
                     "instead.")


class SubmissionError(ValueError):
    """A submission that cannot be stored, with the reason. Nothing was stored."""


@dataclass
class Submission:
    assessment: Assessment
    #: False when the idempotency key had been seen: the earlier record is returned.
    created: bool
    alerts: list[Alert] = field(default_factory=list)


def submit_assessment(
    session: Session,
    actor: Actor,
    patient: Patient,
    instrument_key: str,
    answers: Sequence[int | None],
    idempotency_key: str,
    administered_at: dt.datetime | None = None,
    amends: Assessment | None = None,
    amendment_reason: str | None = None,
) -> Submission:
    """Score and store one questionnaire, with its alerts and audit event, exactly once.

    A patient submits for themselves; staff submissions are transcriptions of paper forms.
    Every flag the instrument marks as alerting (PHQ-9 item 9 positive or unknown, say)
    opens an alert here, whoever submits: no path stores an assessment without it.
    """
    if actor.user is None:
        raise SubmissionError("A submission needs a signed-in person.")
    if not idempotency_key or len(idempotency_key) > 64:
        raise SubmissionError("The form is missing its submission key; reload the page.")
    # The same form sent again with the same answers is one submission; sent again with other
    # answers (back button, changed answer) it is another, and is scored on its own.
    stored_key = submission_fingerprint(patient.id, idempotency_key, instrument_key, answers,
                                        administered_at, amends, amendment_reason)
    earlier = session.scalar(select(Assessment).where(Assessment.idempotency_key == stored_key))
    if earlier is None:
        earlier = _same_answers_just_sent(session, patient.id, instrument_key, answers, amends,
                                          administered_at)
    if earlier is not None:
        return Submission(assessment=earlier, created=False)

    try:
        instrument = instruments.get(instrument_key)
        score = instruments.score(instrument_key, answers)
    except instruments.InstrumentError as error:
        raise SubmissionError(str(error)) from None
    now = utcnow()
    administered_at = administered_at or now
    if administered_at > now:
        raise SubmissionError("The date the questionnaire was completed cannot be in the future.")
    _check_amendment(session, patient, instrument_key, amends, amendment_reason)

    assessment = Assessment(
        patient_id=patient.id,
        instrument_key=instrument.key,
        instrument_version=instrument.version,
        administered_at=administered_at,
        submitted_at=now,
        entered_by_id=actor.user.id,
        source="patient" if actor.user.role == "patient" else "transcribed",
        idempotency_key=stored_key,
        amends_id=amends.id if amends is not None else None,
        amendment_reason=amendment_reason.strip() if amendment_reason else None,
        scorable=score.scorable,
        total=score.total,
        prorated=score.prorated,
        band=score.band,
        above_cutpoint=score.above_cutpoint,
        provisional_diagnosis=score.provisional_diagnosis,
        subscales=dict(score.subscales),
        flags=dict(score.flags),
        missing_items=list(score.missing_items),
    )
    try:
        with session.begin_nested():
            session.add(assessment)
            session.flush()
    except IntegrityError:
        # Two copies of one submission raced; the other one was stored first.
        earlier = session.scalar(
            select(Assessment).where(Assessment.idempotency_key == stored_key))
        if earlier is not None:
            return Submission(assessment=earlier, created=False)
        if amends is not None:
            raise SubmissionError(ALREADY_CORRECTED) from None
        raise

    items = instrument.items
    session.add_all(
        AssessmentAnswer(assessment_id=assessment.id, item_number=item.number, value=value)
        for item, value in zip(items, score.answers)
        if value is not None
    )
    baseline = _baseline_total(session, patient.id, instrument.measure, administered_at)
    open_kinds = set(session.scalars(select(Alert.kind).where(
        Alert.patient_id == patient.id, Alert.acknowledged_at.is_(None))))
    alerts = [
        Alert(patient_id=patient.id, assessment_id=assessment.id, kind=spec.kind,
              value=spec.value, reason=spec.reason, crisis=spec.crisis, raised_at=now)
        for spec in alerts_called_for(instrument.key, score.flags, score.total, baseline)
        # A worsening already waiting for a clinician is not raised again each week.
        if spec.crisis or spec.from_answers or spec.kind not in open_kinds
    ]
    session.add_all(alerts)
    session.flush()
    audit.record(
        session, actor, "assessment.correct" if amends is not None else "assessment.submit",
        patient=patient, object_type="assessment", object_id=assessment.id,
        old=_recorded_values(amends) if amends is not None else None,
        new=_recorded_values(assessment, score.answers), reason=assessment.amendment_reason,
        details={"instrument": instrument.key, "version": instrument.version,
                 "source": assessment.source, "amends": assessment.amends_id},
    )
    for alert in alerts:
        audit.record(session, actor, "alert.raise", patient=patient, object_type="alert",
                     object_id=alert.id, details={"kind": alert.kind, "assessment": assessment.id})
    summaries.refresh(session, patient.id)
    return Submission(assessment=assessment, created=True, alerts=alerts)


def _recorded_values(assessment: Assessment,
                     answers: Sequence[int | None] | None = None) -> dict[str, object]:
    """What an assessment holds, for the audit trail's old and new values."""
    if answers is None:
        given = {answer.item_number: answer.value for answer in assessment.answers}
        items = instruments.get(assessment.instrument_key).items
        answers = [given.get(item.number) for item in items]
    return {"assessment": assessment.id, "administered_at": assessment.administered_at.isoformat(),
            "answers": list(answers), "total": assessment.total, "band": assessment.band,
            "flags": assessment.flags}


@dataclass(frozen=True)
class AlertSpec:
    """An alert that a score calls for."""

    kind: str
    value: str
    reason: str
    crisis: bool
    #: True for a flag on the answers themselves; False for a change against the baseline.
    from_answers: bool


def alerts_called_for(instrument_key: str, flags: Mapping[str, object], total: int | None,
                      baseline_total: int | None) -> list[AlertSpec]:
    """Every alert the instrument's definition asks for: flags on the answers (PHQ-9 item 9
    positive or unknown, an after-infusion review) and change thresholds met against the
    baseline that carry an alert (PCL-5 clinically meaningful worsening)."""
    instrument = instruments.get(instrument_key)
    specs = [AlertSpec(rule.key, str(flags[rule.key]).lower(), rule.alert_reason, rule.crisis,
                       True)
             for rule in instrument.flags
             if rule.key in flags and flags[rule.key] in rule.alert_values]
    if total is not None and baseline_total is not None:
        change = instruments.change(instrument_key, baseline_total, total)
        specs += [AlertSpec(threshold.key, "true", threshold.alert_reason, False, False)
                  for threshold in instrument.change_thresholds
                  if threshold.alert_reason and change.fields.get(threshold.key) is True]
    return specs


def risk_in_unsaved_answers(instrument_key: str, answers: Sequence[int | None]
                            ) -> tuple[bool, list[AlertSpec]]:
    """For answers that could not be stored (an incomplete form): whether they call for
    crisis resources now (a blank counts), and the crisis alerts that the given answers
    settle whatever the blanks turn out to be."""
    instrument = instruments.get(instrument_key)
    partial = instruments.score(instrument_key, answers)
    show = any(flag.crisis for flag in partial.alerts)
    filled = [item.min_value if answer is None else answer
              for item, answer in zip(instrument.items, partial.answers)]
    settled = [spec for spec in alerts_called_for(
        instrument_key, instruments.score(instrument_key, filled).flags, None, None)
        if spec.crisis]
    return show, settled


def raise_unsaved_risk_alerts(session: Session, actor: Actor, patient: Patient,
                              client_key: str, specs: Sequence[AlertSpec]) -> list[Alert]:
    """Open an alert for risk seen in answers that were not stored, once per form."""
    submission_key = hashlib.sha256(f"{patient.id}:{client_key}".encode()).hexdigest()
    raised = []
    for spec in specs:
        alert = Alert(patient_id=patient.id, submission_key=submission_key, kind=spec.kind,
                      value=spec.value, crisis=spec.crisis, raised_at=utcnow(),
                      reason=spec.reason + " (on a form sent incomplete; not stored)")
        try:
            with session.begin_nested():
                session.add(alert)
                session.flush()
        except IntegrityError:
            continue  # this form's risk was already raised
        audit.record(session, actor, "alert.raise", patient=patient, object_type="alert",
                     object_id=alert.id, details={"kind": alert.kind, "assessment": None})
        raised.append(alert)
    if raised:
        summaries.refresh(session, patient.id)
    return raised


def _baseline_total(session: Session, patient_id: int, measure: str,
                    before: dt.datetime) -> int | None:
    """The total of the patient's first scorable record of this measure, if it came before."""
    keys = [i.key for i in instruments.all() if i.measure == measure]
    records = current_assessments(session.scalars(
        select(Assessment).where(Assessment.patient_id == patient_id,
                                 Assessment.instrument_key.in_(keys))).all())
    scored = sorted((a for a in records if a.scorable and a.administered_at < before),
                    key=lambda a: (a.administered_at, a.id))
    return scored[0].total if scored else None


#: The same answers to the same questionnaire sent again within this time are one submission,
#: whatever the form's key: the back button can reload a form under a new key while the
#: browser puts the answers back.
REPEAT_WINDOW = dt.timedelta(minutes=30)


def _same_answers_just_sent(session: Session, patient_id: int, instrument_key: str,
                            answers: Sequence[int | None], amends: Assessment | None,
                            administered_at: dt.datetime | None) -> Assessment | None:
    try:
        given = instruments.score(instrument_key, answers).answers
    except instruments.InstrumentError:
        return None  # refused with its own message below
    same_target = (Assessment.amends_id == amends.id if amends is not None
                   else Assessment.amends_id.is_(None))
    recent = session.scalars(
        select(Assessment).where(
            Assessment.patient_id == patient_id, Assessment.instrument_key == instrument_key,
            Assessment.submitted_at >= utcnow() - REPEAT_WINDOW, same_target,
            # Paper forms carry their own date: two forms of different days are two records.
            *([Assessment.administered_at == administered_at] if administered_at else []))
        .order_by(Assessment.id.desc())
    )
    items = instruments.get(instrument_key).items
    for assessment in recent:
        stored = {answer.item_number: answer.value for answer in assessment.answers}
        if tuple(stored.get(item.number) for item in items) == tuple(given):
            return assessment
    return None


def submission_fingerprint(patient_id: int, client_key: str, instrument_key: str,
                           answers: Sequence[int | None], administered_at: dt.datetime | None,
                           amends: Assessment | None, amendment_reason: str | None) -> str:
    """The stored idempotency key: the form's own key together with everything submitted."""
    content = json.dumps([patient_id, client_key, instrument_key, list(answers),
                          administered_at.isoformat() if administered_at else None,
                          amends.id if amends is not None else None, amendment_reason])
    return hashlib.sha256(content.encode()).hexdigest()


def _check_amendment(
    session: Session, patient: Patient, instrument_key: str, amends: Assessment | None,
    reason: str | None,
) -> None:
    if amends is None:
        if reason:
            raise SubmissionError("A reason is given only with a correction.")
        return
    if amends.patient_id != patient.id or amends.instrument_key != instrument_key:
        raise SubmissionError("A correction must be for the same patient and questionnaire.")
    if not reason or not reason.strip():
        raise SubmissionError("A correction needs a reason.")
    if session.scalar(select(Assessment.id).where(Assessment.amends_id == amends.id)):
        raise SubmissionError(ALREADY_CORRECTED)


def crisis_flagged(assessment: Assessment) -> bool:
    """True when the answers call for crisis resources (per the instrument's flag rules)."""
    return any(spec.crisis for spec in alerts_called_for(
        assessment.instrument_key, assessment.flags, None, None))


def patient_assessments(session: Session, patient_id: int) -> list[Assessment]:
    """The patient's assessments, newest first."""
    return list(session.scalars(
        select(Assessment)
        .where(Assessment.patient_id == patient_id)
        .order_by(Assessment.administered_at.desc(), Assessment.id.desc())
    ))


def superseded_ids(assessments: Sequence[Assessment]) -> set[int]:
    """Ids of assessments that a later correction replaces."""
    return {a.amends_id for a in assessments if a.amends_id is not None}


def current_assessments(assessments: Sequence[Assessment]) -> list[Assessment]:
    """The assessments that count: those no correction replaces."""
    replaced = superseded_ids(assessments)
    return [a for a in assessments if a.id not in replaced]
