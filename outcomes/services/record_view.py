"""A patient's record as its pages show it: courses with their infusion counts and what can
be done next, questionnaires with their band and answers in the definition's words. The
templates show these values; the rules behind them (which course is open, whether a course
takes another infusion, what an answer's option is called) stay here."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import instruments

from ..models import Assessment, Course, Infusion, InfusionVersion
from .courses import INDICATION_LABELS, STATUS_LABELS
from .records import OPEN_COURSE_STATUSES, open_course_of
from .triage import ItemAnswer, item_answer


@dataclass(frozen=True)
class InfusionLine:
    """An infusion as the course lists it."""

    infusion: Infusion
    #: What was given, as last corrected.
    current: InfusionVersion
    #: How many versions it has; more than one means it was corrected.
    versions: int

    @property
    def corrected(self) -> bool:
        return self.versions > 1


@dataclass(frozen=True)
class CourseLine:
    """A course, its infusions, and whether it takes another."""

    course: Course
    indication: str
    status: str
    infusions: tuple[InfusionLine, ...]
    #: The number the next infusion takes.
    next_number: int
    #: True while the course is open and not every planned infusion is recorded.
    takes_infusions: bool

    @property
    def recorded(self) -> int:
        return len(self.infusions)


@dataclass(frozen=True)
class Courses:
    """A patient's courses, newest first, and whether a new one may start."""

    lines: tuple[CourseLine, ...]
    #: True when no course is open (one open course at a time).
    can_start: bool


def course_line(course: Course) -> CourseLine:
    """``course`` as its pages show it."""
    infusions = tuple(InfusionLine(infusion, infusion.current, len(infusion.versions))
                      for infusion in course.infusions)
    return CourseLine(
        course=course, indication=INDICATION_LABELS[course.indication],
        status=STATUS_LABELS[course.status], infusions=infusions,
        next_number=len(infusions) + 1,
        takes_infusions=(course.status in OPEN_COURSE_STATUSES
                         and len(infusions) < course.planned_infusions))


def courses_of(courses: Sequence[Course]) -> Courses:
    """The patient's ``courses`` (newest first) as their record's page shows them."""
    return Courses(tuple(course_line(course) for course in courses),
                   can_start=open_course_of(courses) is None)


@dataclass(frozen=True)
class AssessmentInWords:
    """A questionnaire with its scores and answers in the definition's words."""

    assessment: Assessment
    instrument: instruments.Instrument
    #: The band's label ("Moderately severe"), or None when the total has no band.
    band: str | None
    #: Every item of the definition in order, with the answer given (None: left blank).
    answers: tuple[ItemAnswer, ...]
    #: Who entered the paper form; None when the patient answered on their own device.
    transcribed_by: str | None


def in_words(assessment: Assessment) -> AssessmentInWords:
    """``assessment`` in the words of its definition."""
    instrument = instruments.get(assessment.instrument_key)
    given = {answer.item_number: answer.value for answer in assessment.answers}
    band = next((band.label for band in instrument.bands if band.key == assessment.band), None)
    return AssessmentInWords(
        assessment=assessment, instrument=instrument, band=band,
        answers=tuple(item_answer(instrument, item.number, given.get(item.number))
                      for item in instrument.items),
        transcribed_by=(assessment.entered_by.email if assessment.source == "transcribed"
                        else None))
