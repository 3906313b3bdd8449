"""Triage: alerts described as what happened, the clinic's inbox of open alerts and the counts
at the top of the dashboard (what the clinic tells patients about its response time is a
clinic setting: ``clinic_settings``).

An alert is described from what the patient answered, never from the rule's wording: the
items its flag rule read, with the answer chosen ("More than half the days"), who entered the
form and when, and how long the alert has waited. Alerts raised from answers carry that
evidence (``Alert.evidence``); for older alerts without it, the stored answers of the alert's
assessment are read instead, and the definition's own flag rule picks the items.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, joinedload, selectinload

import instruments

from ..clock import to_local
from ..models import Alert, Assessment, Patient, utcnow
from .delivery_view import DeliveryLine, alert_delivery_lines

#: The inbox's kind filter: crisis alerts (the patient was shown crisis resources), the rest,
#: or one alert kind of the definitions (added below from the instruments package).
KIND_CRISIS, KIND_OTHER = "crisis", "other"


@dataclass(frozen=True)
class ItemAnswer:
    """One item the alert's rule read, and what the patient chose."""

    number: int
    text: str
    value: int | None
    #: The option's words ("Several days"); None when the item was left unanswered.
    label: str | None


@dataclass(frozen=True)
class LatestAnswers:
    """The newest record linked to an alert (it repeated the disclosure while the alert was
    open): its answers to the items the alert's rule read, or its total for a change alert.
    A worsening answer files under the open alert, so the clinician must see it there."""

    assessment: Assessment
    answers: tuple[ItemAnswer, ...]
    total: int | None
    #: How long ago it reached the clinic.
    age: str
    #: True when it answered differently from what raised the alert.
    changed: bool


@dataclass(frozen=True)
class AlertDescription:
    """What happened, in the clinic's words rather than the rule's."""

    alert: Alert
    #: The instrument's short title ("PHQ-9"), or None when it cannot be known.
    instrument: str | None
    #: The flag or change threshold, as people read it ("Suicide risk", "Clinically
    #: meaningful worsening").
    kind: str
    answers: tuple[ItemAnswer, ...]
    #: For a change alert: the baseline and current totals.
    baseline: int | None
    current: int | None
    #: Who entered the form: "the patient" or "a paper form entered by …".
    entered_by: str
    #: When the patient answered (the form's date for a paper form); None when not stored.
    answered_at: dt.datetime | None
    #: True when the answers came from a form that was not stored (sent incomplete, say).
    unsaved: bool
    age: str
    #: The newest linked record, when a later form repeated the disclosure.
    latest: LatestAnswers | None
    #: What happened, in a few words: "PHQ-9 item 9 · 'Several days'", "PCL-5 20 → 31";
    #: with a later, different answer first: "PHQ-9 item 9 · 'Nearly every day' (latest,
    #: 2 h ago) · first left blank".
    what: str
    #: The notifications sent about it (to its patient's clinician, the on-call address, the
    #: admins), oldest first; loaded only by ``describe_with_notifications``.
    notifications: tuple[DeliveryLine, ...] = ()

    @property
    def notifications_failed(self) -> int:
        """How many of its notifications failed for good (the alert says so at its top)."""
        return sum(1 for line in self.notifications if line.delivery.status == "failed")

    @property
    def seen(self) -> int:
        """How many linked records this description shows: the acknowledge form carries it, so
        an answer linked after the page was drawn cannot be acknowledged unseen."""
        return len(self.alert.also_seen_in)

    @property
    def summary(self) -> str:
        """One line for the dashboard: "PHQ-9 item 9 · 'Several days' · 2 h ago"."""
        return f"{self.what} · {self.age}"

    @property
    def label(self) -> str:
        """What a list calls it: "Crisis" when it came with the crisis resources, else its
        kind."""
        return "Crisis" if self.alert.crisis else self.kind

    @property
    def change(self) -> int | None:
        """For a change alert: the points from the baseline to the current total."""
        return _points(self.baseline, self.current)

    @property
    def latest_change(self) -> int | None:
        """The points from the baseline to the newest linked record's total."""
        return _points(self.baseline, self.latest.total if self.latest else None)


def _points(baseline: int | None, total: int | None) -> int | None:
    return None if baseline is None or total is None else total - baseline


def describe_alert(alert: Alert, instrument: instruments.Instrument | None,
                   now: dt.datetime) -> AlertDescription:
    """Describe an alert from its evidence (or, for older alerts, its assessment's answers)
    and the instrument's definition, with its age at ``now``."""
    assessment = alert.assessment
    evidence: dict[str, Any] = alert.evidence or {}
    answers: tuple[ItemAnswer, ...] = ()
    baseline = current = None
    change = instrument is not None and _threshold(instrument, alert.kind) is not None
    if change:
        baseline = evidence.get("baseline") if evidence else None
        current = evidence.get("current") if evidence else None
        if current is None and assessment is not None:
            current = assessment.total
    elif instrument is not None:
        given = _evidence_answers(evidence) if evidence else _answers_read_by_rule(
            assessment, instrument, alert.kind)
        answers = tuple(item_answer(instrument, number, value) for number, value in given)
    linked = alert.also_seen_in  # oldest first
    latest = _latest(linked[-1], instrument, alert.kind, answers, current, now) \
        if linked else None
    title = instrument.short_title if instrument is not None else None
    kind = _kind_label(instrument, alert.kind)
    age = alert_age(alert.raised_at, now)
    return AlertDescription(
        alert=alert, instrument=title, kind=kind, answers=answers, baseline=baseline,
        current=current, entered_by=_entered_by(assessment), unsaved=assessment is None,
        answered_at=assessment.administered_at if assessment is not None else None, age=age,
        latest=latest, what=_what(instrument, kind, answers, baseline, current, latest))


def _latest(record: Assessment, instrument: instruments.Instrument | None, kind: str,
            first: tuple[ItemAnswer, ...], current: int | None,
            now: dt.datetime) -> LatestAnswers:
    """What the newest linked record says about the items that raised the alert (the same
    items; for an alert whose first answers are gone, those its own answers raise)."""
    answers: tuple[ItemAnswer, ...] = ()
    if instrument is not None and _threshold(instrument, kind) is None:
        stored = {answer.item_number: answer.value for answer in record.answers}
        numbers = [answer.number for answer in first] or [
            number for number, _ in _answers_read_by_rule(record, instrument, kind)]
        answers = tuple(item_answer(instrument, number, stored.get(number))
                        for number in numbers)
    changed = [(a.number, a.value) for a in answers] != [(a.number, a.value) for a in first] \
        if answers else record.total != current
    return LatestAnswers(assessment=record, answers=answers, total=record.total,
                         age=alert_age(record.submitted_at, now), changed=changed)


def _what(instrument: instruments.Instrument | None, kind: str,
          answers: tuple[ItemAnswer, ...], baseline: int | None, current: int | None,
          latest: LatestAnswers | None = None) -> str:
    title = instrument.short_title if instrument is not None else "Alert"
    newer = latest if latest is not None and latest.changed else None
    if current is not None:
        # Totals are compared within a measure (the PCL-5's monthly and weekly versions).
        title = instrument.measure if instrument is not None else title
        if newer is not None and newer.total is not None:
            return (f"{title} {baseline} → {newer.total} (latest, {newer.age}) · first "
                    f"{current}" if baseline is not None else
                    f"{title} total {newer.total} (latest, {newer.age}) · first {current}")
        return f"{title} {baseline} → {current}" if baseline is not None \
            else f"{title} total {current}"
    if not answers and newer is None:
        return f"{title} · {kind.lower()}"
    if newer is not None and newer.answers:
        return (f"{title} item {newer.answers[0].number} · {_words(newer.answers)} "
                f"(latest, {newer.age}) · first {_words(answers) if answers else kind.lower()}")
    return f"{title} item {answers[0].number} · {_words(answers)}"


def _words(answers: tuple[ItemAnswer, ...]) -> str:
    """The first answer as quoted words ("'Several days'", "left blank"), and how many more."""
    first = answers[0]
    words = f"'{first.label}'" if first.label is not None else "left blank"
    return words + (f" (+{len(answers) - 1} more)" if len(answers) > 1 else "")


def _evidence_answers(evidence: dict[str, Any]) -> list[tuple[int, int | None]]:
    return sorted((int(number), value) for number, value in evidence.items()
                  if number.isdigit())


def _answers_read_by_rule(assessment: Assessment | None, instrument: instruments.Instrument,
                          kind: str) -> list[tuple[int, int | None]]:
    """For an alert stored without evidence: the items of a record that raise its flag
    on their own (each answer kept, every other item at its lowest), so the definition's own
    rule decides which answers count, as it did when the alert was raised."""
    if assessment is None:
        return []  # a form sent incomplete before evidence was kept: its answers are gone
    stored = {answer.item_number: answer.value for answer in assessment.answers}
    rule = next((flag for flag in instrument.flags if flag.key == kind), None)
    if rule is None:
        return []
    found = []
    for item in instrument.items:
        alone = [stored.get(item.number) if other is item else other.min_value
                 for other in instrument.items]
        value = instruments.score(instrument.key, alone).flags.get(rule.key)
        if value in rule.alert_values:
            found.append((item.number, stored.get(item.number)))
    return found


def item_answer(instrument: instruments.Instrument, number: int,
                value: int | None) -> ItemAnswer:
    """Item ``number`` of ``instrument`` and the answer ``value`` in the option's words (None
    when unanswered)."""
    item = next((item for item in instrument.items if item.number == number), None)
    if item is None:
        return ItemAnswer(number, f"Item {number}", value, None if value is None else str(value))
    label = next((option.label for option in item.options if option.value == value), None)
    return ItemAnswer(number, item.text, value, label)


def _entered_by(assessment: Assessment | None) -> str:
    if assessment is None:
        # Risk seen on a form that was not stored (sent incomplete, or refused): the alert
        # keeps what the rule read; the audit trail keeps who sent it.
        return "a form that was not stored"
    if assessment.source == "patient":
        return "the patient"
    return f"a paper form entered by {assessment.entered_by.email}"


def _threshold(instrument: instruments.Instrument, kind: str
               ) -> instruments.ChangeThreshold | None:
    return next((t for t in instrument.change_thresholds if t.key == kind), None)


def _kind_label(instrument: instruments.Instrument | None, kind: str) -> str:
    if instrument is not None:
        threshold = _threshold(instrument, kind)
        if threshold is not None:
            return threshold.label
    return kind.replace("_", " ").capitalize()


def alert_instrument(alert: Alert) -> instruments.Instrument | None:
    """The instrument an alert came from, or None if it is no longer defined."""
    try:
        return instruments.get(alert.instrument_key)
    except instruments.UnknownInstrument:
        return None


def alert_age(raised_at: dt.datetime, now: dt.datetime) -> str:
    """How long ago, in a few characters: "just now", "12 min ago", "5 h ago", "3 d ago"."""
    minutes = max(0, int((now - raised_at).total_seconds() // 60))
    if minutes < 1:
        return "just now"
    if minutes < 60:
        return f"{minutes} min ago"
    if minutes < 48 * 60:
        return f"{minutes // 60} h ago"
    return f"{minutes // (24 * 60)} d ago"


def describe(alerts: list[Alert], now: dt.datetime | None = None) -> list[AlertDescription]:
    """Describe several alerts at one moment."""
    now = now or utcnow()
    return [describe_alert(alert, alert_instrument(alert), now) for alert in alerts]


def describe_with_notifications(session: Session, alerts: list[Alert],
                                now: dt.datetime | None = None) -> list[AlertDescription]:
    """Describe alerts with the notifications sent about each, sent, waiting or failed (one
    more statement for all of them): for the pages that show an alert in full, the patient's
    record and the inbox."""
    sent = alert_delivery_lines(session, [alert.id for alert in alerts])
    return [dataclasses.replace(description,
                                notifications=tuple(sent.get(description.alert.id, ())))
            for description in describe(alerts, now)]


def already_acknowledged(alert: Alert, zone: dt.tzinfo) -> str:
    """The message for a second acknowledgement: who dealt with it, when and what they did."""
    by = alert.acknowledged_by.email if alert.acknowledged_by is not None else "someone"
    when = to_local(alert.acknowledged_at, zone).strftime("%-d %b %Y, %H:%M")
    return (f"This alert was already acknowledged by {by} on {when}: "
            f"“{alert.acknowledgement_note}”. Nothing was changed.")


# --- the inbox -----------------------------------------------------------------------------

def alert_kinds() -> dict[str, str]:
    """Every alert kind the definitions can raise, with how people read it."""
    kinds: dict[str, str] = {}
    for instrument in instruments.all():
        for flag in instrument.flags:
            if flag.alert_values:
                kinds.setdefault(flag.key, f"{_kind_label(None, flag.key)} ({instrument.measure})")
        for threshold in instrument.change_thresholds:
            if threshold.alert_reason:
                kinds.setdefault(threshold.key, f"{threshold.label} ({instrument.measure})")
    return kinds


def inbox_kinds() -> dict[str, str]:
    """The inbox's kind filter: crisis, other, then each kind."""
    return {KIND_CRISIS: "Crisis alerts", KIND_OTHER: "Other alerts", **alert_kinds()}


#: Loader options for describing alerts: the records linked to them, with their answers, in
#: two statements for any number of alerts (the latest one's answers are shown).
LINKED_ANSWERS = (selectinload(Alert.also_seen_in).selectinload(Assessment.answers),)


@dataclass(frozen=True)
class InboxQuery:
    #: Only the patients assigned to this clinician; None for the whole clinic.
    clinician_id: int | None = None
    kind: str = ""


def open_alerts(session: Session, clinic_id: int, query: InboxQuery) -> list[Alert]:
    """Every open alert of the clinic: crisis alerts first, then the longest waiting."""
    statement = (
        open_alerts_statement(clinic_id, query.clinician_id)
        .options(joinedload(Alert.patient).joinedload(Patient.assigned_clinician),
                 joinedload(Alert.assessment).joinedload(Assessment.entered_by),
                 joinedload(Alert.assessment).joinedload(Assessment.answers),
                 *LINKED_ANSWERS)
        .order_by(Alert.crisis.desc(), Alert.raised_at, Alert.id)
    )
    if query.kind == KIND_CRISIS:
        statement = statement.where(Alert.crisis.is_(True))
    elif query.kind == KIND_OTHER:
        statement = statement.where(Alert.crisis.is_(False))
    elif query.kind:
        statement = statement.where(Alert.kind == query.kind)
    return list(session.scalars(statement).unique())


def patients_open_alerts(session: Session, patient_ids: list[int]) -> dict[int, list[Alert]]:
    """The open alerts of these patients, most urgent first (crisis, then longest waiting)."""
    statement = (
        select(Alert)
        .where(Alert.patient_id.in_(patient_ids), Alert.acknowledged_at.is_(None))
        .options(joinedload(Alert.assessment).joinedload(Assessment.entered_by),
                 joinedload(Alert.assessment).joinedload(Assessment.answers),
                 # Joined, not selected in: the dashboard reads a page of patients in a fixed
                 # number of statements, linked records or not (few: an alert stays open
                 # for days, questionnaires come weekly).
                 joinedload(Alert.also_seen_in).joinedload(Assessment.answers))
        .order_by(Alert.crisis.desc(), Alert.raised_at, Alert.id)
    )
    found: dict[int, list[Alert]] = {}
    for alert in session.scalars(statement).unique():
        found.setdefault(alert.patient_id, []).append(alert)
    return found


def open_alerts_statement(clinic_id: int, clinician_id: int | None) -> Select:
    """The clinic's open alerts (of one clinician's patients, when given), unordered."""
    statement = (select(Alert).join(Patient, Patient.id == Alert.patient_id)
                 .where(Patient.clinic_id == clinic_id, Alert.acknowledged_at.is_(None)))
    if clinician_id is not None:
        statement = statement.where(Patient.assigned_clinician_id == clinician_id)
    return statement
