"""Submitting questionnaires, scoring them, and raising the alerts their answers call for.

The instrument's flag rules decide whether answers call for crisis resources and an alert
(``alerts_called_for``); every page, form and writer asks them here. The crisis panel and
the crisis alert go together: a stored record or a form sent back incomplete shows the panel
exactly when its answers open (or repeat) a crisis alert. One disclosure opens one alert:
while an alert of a kind is open for a patient's questionnaire, later records that repeat
it are linked to it (``alert_assessment``) instead of opening another.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, or_, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import instruments

from ..clock import at_local_time, clinic_zone, day_bounds
from ..models import Alert, AlertAssessment, Assessment, AssessmentAnswer, Patient, utcnow
from . import audit, summaries
from .audit import Actor
from .baseline import reference_total


ALREADY_CORRECTED = ("This record has already been corrected. Correct the latest version "
                     "instead.")


class SubmissionError(ValueError):
    """A submission that cannot be stored, with the reason. Nothing was stored."""


@dataclass
class Submission:
    assessment: Assessment
    #: False when the idempotency key had been seen: the earlier record is returned.
    created: bool
    #: Alerts this submission opened.
    alerts: list[Alert] = field(default_factory=list)
    #: Open alerts this submission repeated: the record was linked to them.
    linked: list[Alert] = field(default_factory=list)


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
    *,
    form_date: dt.date | None = None,
) -> Submission:
    """Score and store one questionnaire, with its alerts and audit event, exactly once.

    A patient submits for themselves; staff submissions are transcriptions of paper forms,
    which give ``form_date``, the date written on the form: the record's identity comes from
    it (with the form's key and the answers), never from the server's clock, so the same
    paper form sent twice is one record at any hour. ``administered_at`` is for callers that
    know the moment (imports, tests); without either it is now.
    Every flag the instrument marks as alerting (PHQ-9 item 9 positive or unknown, say)
    opens an alert here, or links the record to the open alert it repeats, whoever submits:
    no path stores an assessment without it.
    """
    if actor.user is None:
        raise SubmissionError("A submission needs a signed-in person.")
    if not idempotency_key or len(idempotency_key) > 64:
        raise SubmissionError("The form is missing its submission key; reload the page.")
    if administered_at is not None and form_date is not None:
        raise SubmissionError("Give the form's date or the time it was completed, not both.")
    try:
        instrument = instruments.get(instrument_key)
        score = instruments.score(instrument_key, answers)
    except instruments.InstrumentError as error:
        raise SubmissionError(str(error)) from None
    now = utcnow()
    zone = clinic_zone(patient.clinic)
    same_administration = _same_administration(form_date, administered_at, zone, now)
    if form_date is not None:
        administered_at = paper_form_time(form_date, zone, now)
    administered_at = administered_at or now
    if administered_at > now:
        raise SubmissionError("The date the questionnaire was completed cannot be in the future.")
    # The same form sent again with the same answers is one submission; sent again with other
    # answers (back button, changed answer) it is another, and is scored on its own.
    stored_key = submission_fingerprint(patient.id, idempotency_key, instrument.key,
                                        score.answers, form_date or administered_at, amends,
                                        amendment_reason)
    hold_submissions(session, patient.id, instrument.measure)
    earlier = session.scalar(select(Assessment).where(Assessment.idempotency_key == stored_key))
    if earlier is None:
        earlier = _same_answers_just_sent(session, patient.id, instrument.key, score.answers,
                                          amends, same_administration)
    if earlier is not None:
        return Submission(assessment=earlier, created=False)
    _check_amendment(session, patient, instrument.key, amends, amendment_reason)

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
        # A correction of a record that another one corrected first (the lock above makes
        # a race on the submission key itself impossible; this is the schema's own fence).
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
    audit.record(
        session, actor, "assessment.correct" if amends is not None else "assessment.submit",
        patient=patient, object_type="assessment", object_id=assessment.id,
        old=_recorded_values(amends) if amends is not None else None,
        new=_recorded_values(assessment, score.answers), reason=assessment.amendment_reason,
        details={"instrument": instrument.key, "version": instrument.version,
                 "source": assessment.source, "amends": assessment.amends_id},
    )
    opened, linked = _open_or_link_alerts(
        session, actor, patient, instrument.key,
        alerts_called_for(instrument.key, score.flags, score.total, baseline, score.answers),
        record=assessment, amends=amends, now=now)
    summaries.touch(session, patient.id)
    return Submission(assessment=assessment, created=True, alerts=opened, linked=linked)


def paper_form_time(day: dt.date, zone: dt.tzinfo, now: dt.datetime) -> dt.datetime:
    """The moment stored for a paper form dated ``day``: noon that day in the clinic's zone,
    or now if noon is still to come (a record is never dated after it reached the server).
    Only the stored time depends on the clock; the record's identity is the date itself."""
    return min(at_local_time(zone, day, dt.time(12)), now)


def hold_submissions(session: Session, patient_id: int, measure: str) -> None:
    """Let one transaction at a time submit for this patient's measure, until it commits.

    The repeat checks (same key, same answers just sent) and the open-alert check read
    before they write; without this, copies of one form sent at once all read "nothing yet"
    and each stores a record and an alert. PostgreSQL: a transaction-scoped advisory lock.
    SQLite: every transaction of the app begins IMMEDIATE, holding the database's single
    write lock already, so there is nothing more to take.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    digest = hashlib.blake2b(f"submission:{patient_id}:{measure}".encode(), digest_size=8)
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                    {"key": int.from_bytes(digest.digest(), "big", signed=True)})


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
    """An alert that answers or a score call for."""

    kind: str
    value: str
    reason: str
    crisis: bool
    #: True for a flag on the answers themselves; False for a change against the baseline.
    from_answers: bool
    #: What was said (``Alert.evidence``): {"9": 2} for a flag, baseline and current totals
    #: for a change.
    evidence: dict[str, Any] = field(default_factory=dict)


def alerts_called_for(instrument_key: str, flags: Mapping[str, object], total: int | None,
                      baseline_total: int | None,
                      answers: Sequence[int | None] | None = None) -> list[AlertSpec]:
    """Every alert the instrument's definition asks for: flags whose value is one of the
    definition's ``alert_values`` (PHQ-9 item 9 positive or unknown, an after-infusion
    review) and change thresholds met against the baseline that carry an alert (PCL-5
    clinically meaningful worsening). With the answers, each flag alert carries the answers
    that raised it. This is the one place the flag rules are read for alerts and crisis."""
    instrument = instruments.get(instrument_key)
    specs = [AlertSpec(rule.key, str(flags[rule.key]).lower(), rule.alert_reason, rule.crisis,
                       True, instruments.flag_evidence(instrument_key, rule.key, answers)
                       if answers is not None else {})
             for rule in instrument.flags if rule.key in flags and rule.alerts_on(flags[rule.key])]
    if total is not None and baseline_total is not None:
        change = instruments.change(instrument_key, baseline_total, total)
        specs += [AlertSpec(threshold.key, "true", threshold.alert_reason, False, False,
                            {"baseline": baseline_total, "current": total})
                  for threshold in instrument.change_thresholds
                  if threshold.alert_reason and change.fields.get(threshold.key) is True]
    return specs


def crisis_flagged(assessment: Assessment) -> bool:
    """True when a stored record's answers call for crisis resources (per the instrument's
    flag rules); such a record always has a crisis alert, opened by it or linked to it."""
    return any(spec.crisis for spec in alerts_called_for(
        assessment.instrument_key, assessment.flags, None, None))


def flag_texts(assessment: Assessment) -> list[str]:
    """The record's alerting flags as short texts, with the items whose answers raised them,
    e.g. "suicide risk (item 9): unknown" or "clinician review (items 8, 9): yes"."""
    given = {answer.item_number: answer.value for answer in assessment.answers}
    answers = [given.get(item.number)
               for item in instruments.get(assessment.instrument_key).items]
    texts = []
    for spec in alerts_called_for(assessment.instrument_key, assessment.flags, None, None,
                                  answers):
        items = f" (item{'s' if len(spec.evidence) > 1 else ''} {', '.join(spec.evidence)})" \
            if spec.evidence else ""
        texts.append(f"{spec.kind.replace('_', ' ')}{items}: "
                     f"{'yes' if spec.value == 'true' else spec.value}")
    return texts


@dataclass(frozen=True)
class UnsavedRisk:
    """What the answers of a form sent back incomplete call for."""

    #: The alerts the given answers settle, whatever the blanks turn out to be.
    alerts: list[AlertSpec]

    @property
    def crisis(self) -> bool:
        """Show the crisis panel: exactly when a crisis alert is opened (or already open).
        A blank that could be risk (PHQ-9 item 9 not answered yet) is not: the patient has
        said nothing yet, and the page keeps a short line with the crisis numbers instead."""
        return any(spec.crisis for spec in self.alerts)


def risk_in_unsaved_answers(instrument_key: str, answers: Sequence[int | None]) -> UnsavedRisk:
    """For answers that could not be stored (an incomplete form, a paper form refused for its
    date): the alerts that the given answers call for whatever the blanks turn out to be,
    found by scoring the blanks as their lowest answer."""
    instrument = instruments.get(instrument_key)
    given = instruments.score(instrument_key, answers).answers
    lowest = [item.min_value if answer is None else answer
              for item, answer in zip(instrument.items, given)]
    return UnsavedRisk([spec for spec in alerts_called_for(
        instrument_key, instruments.score(instrument_key, lowest).flags, None, None, lowest)])


def raise_unsaved_risk_alerts(session: Session, actor: Actor, patient: Patient,
                              instrument_key: str, client_key: str | None,
                              answers: Sequence[int | None], *,
                              amends: Assessment | None = None) -> UnsavedRisk:
    """Hear a form sent back incomplete (or a paper form refused): open the alerts its answers
    call for, once per disclosure (not again for the same form, nor while one of that kind is
    open for the questionnaire), and say whether the page shows the crisis panel."""
    risk = risk_in_unsaved_answers(instrument_key, answers)
    if not risk.alerts:
        return risk
    hold_submissions(session, patient.id, instruments.get(instrument_key).measure)
    # A form without its key (a broken page) is still heard; its answers name it instead.
    name = client_key or json.dumps([instrument_key, list(answers)])
    submission_key = hashlib.sha256(f"{patient.id}:{name}".encode()).hexdigest()
    opened, _ = _open_or_link_alerts(session, actor, patient, instrument_key, risk.alerts,
                                     submission_key=submission_key, amends=amends,
                                     now=utcnow())
    if opened:
        summaries.touch(session, patient.id)
    return risk


def _open_or_link_alerts(session: Session, actor: Actor, patient: Patient,
                         instrument_key: str, specs: Sequence[AlertSpec], *, now: dt.datetime,
                         record: Assessment | None = None, submission_key: str | None = None,
                         amends: Assessment | None = None) -> tuple[list[Alert], list[Alert]]:
    """Open an alert for each spec, or link the record to the alert it repeats; with the
    audit rows. The caller holds ``hold_submissions``."""
    opened, linked = [], []
    for spec in specs:
        existing = _alert_repeated(session, patient.id, instrument_key, spec, amends,
                                   submission_key)
        if existing is not None:
            if record is not None:
                session.add(AlertAssessment(alert_id=existing.id, assessment_id=record.id,
                                            linked_at=now))
                audit.record(session, actor, "alert.link", patient=patient,
                             object_type="alert", object_id=existing.id,
                             details={"kind": existing.kind, "assessment": record.id})
                linked.append(existing)
            continue
        reason = spec.reason if record is not None else \
            spec.reason + " (on a form sent incomplete; not stored)"
        alert = Alert(patient_id=patient.id, instrument_key=instrument_key,
                      assessment_id=record.id if record is not None else None,
                      submission_key=submission_key, kind=spec.kind, value=spec.value,
                      reason=reason, crisis=spec.crisis, evidence=spec.evidence, raised_at=now)
        session.add(alert)
        session.flush()
        audit.record(session, actor, "alert.raise", patient=patient, object_type="alert",
                     object_id=alert.id,
                     details={"kind": alert.kind,
                              "assessment": record.id if record is not None else None})
        opened.append(alert)
    session.flush()
    return opened, linked


def _alert_repeated(session: Session, patient_id: int, instrument_key: str, spec: AlertSpec,
                    amends: Assessment | None, submission_key: str | None) -> Alert | None:
    """The alert that answers calling for ``spec`` repeat, if any: an open one of the kind for
    this questionnaire (for a change against the baseline, any questionnaire of the measure);
    for a correction keeping the flag's value, the corrected record's own alert, even once
    acknowledged; for a form sent incomplete again, the alert it raised the first time."""
    measure = instruments.get(instrument_key).measure
    keys = [instrument_key] if spec.from_answers else \
        [other.key for other in instruments.all() if other.measure == measure]
    same = [Alert.patient_id == patient_id, Alert.kind == spec.kind]
    found = session.scalar(select(Alert).where(
        *same, Alert.instrument_key.in_(keys), Alert.acknowledged_at.is_(None))
        .order_by(Alert.id).limit(1))
    if found is None and amends is not None and spec.from_answers:
        found = session.scalar(select(Alert).where(
            *same, Alert.value == spec.value,
            or_(Alert.assessment_id == amends.id,
                Alert.id.in_(select(AlertAssessment.alert_id)
                             .where(AlertAssessment.assessment_id == amends.id))))
            .order_by(Alert.id).limit(1))
    if found is None and submission_key is not None:
        found = session.scalar(select(Alert).where(*same,
                                                   Alert.submission_key == submission_key))
    return found


def _baseline_total(session: Session, patient_id: int, measure: str,
                    before: dt.datetime) -> int | None:
    """The total a new score of this measure given at ``before`` is compared with: the one
    reference of ``services.baseline`` (the course baseline, or the first score)."""
    return reference_total(session, patient_id, measure, before)


#: The same answers to the same questionnaire sent again within this time are one submission,
#: whatever the form's key: the back button can reload a form under a new key while the
#: browser puts the answers back.
REPEAT_WINDOW = dt.timedelta(minutes=30)


def _same_administration(form_date: dt.date | None, given_time: dt.datetime | None,
                         zone: dt.tzinfo, now: dt.datetime) -> list[ColumnElement[bool]]:
    """Which earlier records with the same answers are this one again. A paper form: any
    paper form of the day written on it (in the clinic's zone), whenever it was entered, so
    the server's clock plays no part. A patient's own form: any sent within REPEAT_WINDOW;
    one given its moment: of that moment, within the window too."""
    if form_date is not None:
        start, end = day_bounds(zone, form_date)
        return [Assessment.source == "transcribed",
                Assessment.administered_at >= start, Assessment.administered_at < end]
    recent = Assessment.submitted_at >= now - REPEAT_WINDOW
    if given_time is not None:
        return [recent, Assessment.administered_at == given_time]
    return [recent]


def _same_answers_just_sent(session: Session, patient_id: int, instrument_key: str,
                            answers: Sequence[int | None], amends: Assessment | None,
                            same_administration: list[ColumnElement[bool]]
                            ) -> Assessment | None:
    same_target = (Assessment.amends_id == amends.id if amends is not None
                   else Assessment.amends_id.is_(None))
    recent = session.scalars(
        select(Assessment).where(
            Assessment.patient_id == patient_id, Assessment.instrument_key == instrument_key,
            same_target, *same_administration)
        .order_by(Assessment.id.desc())
    )
    items = instruments.get(instrument_key).items
    for assessment in recent:
        stored = {answer.item_number: answer.value for answer in assessment.answers}
        if tuple(stored.get(item.number) for item in items) == tuple(answers):
            return assessment
    return None


def submission_fingerprint(patient_id: int, client_key: str, instrument_key: str,
                           answers: Sequence[int | None],
                           administered: dt.date | dt.datetime | None,
                           amends: Assessment | None, amendment_reason: str | None) -> str:
    """The stored idempotency key: the form's own key together with everything submitted
    (for a paper form, the date written on it)."""
    content = json.dumps([patient_id, client_key, instrument_key, list(answers),
                          administered.isoformat() if administered else None,
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
