"""The dashboard summary says what its reference is: a course baseline or the first score.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30

Issue 9 item 7: change is reported from one named reference (docs/baseline.md). The summary
row kept the reference's total and date but not its kind, so the dashboard could not say
"since first". Existing rows get the kind, and the reference's total and date and the
improving/worsening flags are recomputed with it, so that every row agrees with the rule
(rows written before the rule was one function held the first score as "baseline").

The rows are read and written through plain tables (never the models, which describe the
newest schema, not this revision's); the values come from the one rule
(``services.summaries.measure_values`` and ``services.baseline``), pure functions of records
and course windows, so the migration does not restate it: it only lays each measure's values
out in this revision's columns.
"""
from alembic import op
import sqlalchemy as sa

from outcomes.clock import clinic_zone
from outcomes.models import UTCDateTime, as_utc
from outcomes.services.baseline import windows_from
from outcomes.services.summaries import measure_values


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

#: The summary's measures at this revision, by their column prefixes.
MEASURES = {"pcl5": "PCL-5", "phq9": "PHQ-9"}
#: A measure's values, by the column suffix they go to at this revision.
FIELDS = ("baseline", "baseline_at", "reference_kind", "latest", "latest_at")
#: The summary's columns that this migration fills.
COLUMNS = ("improving", "worsening", *(
    f"{prefix}_{name}" for prefix in MEASURES for name in FIELDS))


def upgrade() -> None:
    with op.batch_alter_table("patient_summary") as batch_op:
        for prefix in MEASURES:
            batch_op.add_column(sa.Column(f"{prefix}_reference_kind", sa.String(length=16),
                                          nullable=True))
    fill_summaries()
    with op.batch_alter_table("patient_summary") as batch_op:
        for prefix in MEASURES:
            batch_op.create_check_constraint(
                f"{prefix}_reference_kind_known",
                f"({prefix}_reference_kind IS NULL AND {prefix}_baseline IS NULL) OR "
                f"({prefix}_reference_kind IN ('baseline', 'since first') "
                f"AND {prefix}_baseline IS NOT NULL)")


def fill_summaries() -> None:
    """Recompute every summary row's score columns, one patient at a time."""
    bind = op.get_bind()
    summary = sa.table("patient_summary", sa.column("patient_id"),
                       sa.column("improving", sa.Boolean()), sa.column("worsening", sa.Boolean()),
                       *(sa.column(name, UTCDateTime() if name.endswith("_at") else None)
                         for name in COLUMNS if name not in ("improving", "worsening")))
    patient = sa.table("patient", sa.column("id"), sa.column("clinic_id"))
    clinic = sa.table("clinic", sa.column("id"), sa.column("timezone"))
    assessment = sa.table(
        "assessment", sa.column("id"), sa.column("patient_id"), sa.column("instrument_key"),
        sa.column("administered_at", UTCDateTime()), sa.column("total"),
        sa.column("scorable", sa.Boolean()), sa.column("amends_id"))
    correction = assessment.alias("correction")
    course = sa.table("course", sa.column("id"), sa.column("patient_id"))
    infusion = sa.table("infusion", sa.column("id"), sa.column("course_id"))
    version = sa.table("infusion_version", sa.column("infusion_id"), sa.column("version"),
                       sa.column("administered_at"))
    later = version.alias("later")

    patients = bind.execute(
        sa.select(summary.c.patient_id, clinic.c.timezone)
        .join(patient, patient.c.id == summary.c.patient_id)
        .join(clinic, clinic.c.id == patient.c.clinic_id)).all()
    for patient_id, timezone in patients:
        # The current scorable records: a record replaced by a correction is left out.
        records = bind.execute(
            sa.select(assessment.c.id, assessment.c.instrument_key,
                      assessment.c.administered_at, assessment.c.total, assessment.c.scorable)
            .where(assessment.c.patient_id == patient_id, assessment.c.scorable.is_(True),
                   ~sa.exists().where(correction.c.amends_id == assessment.c.id))).all()
        # Each course's first infusion, as each infusion's latest version records it.
        firsts = bind.scalars(
            sa.select(sa.func.min(version.c.administered_at))
            .join(infusion, infusion.c.id == version.c.infusion_id)
            .join(course, course.c.id == infusion.c.course_id)
            .where(course.c.patient_id == patient_id,
                   ~sa.exists().where(later.c.infusion_id == version.c.infusion_id,
                                      later.c.version > version.c.version))
            .group_by(course.c.id)).all()
        windows = windows_from((as_utc(first) for first in firsts), clinic_zone(timezone))
        ordered = sorted(records, key=lambda record: (record.administered_at, record.id))
        bind.execute(summary.update().where(summary.c.patient_id == patient_id)
                     .values(summary_columns(measure_values(ordered, windows))))


def summary_columns(measures: dict[str, dict]) -> dict[str, object]:
    """This revision's score columns from each measure's values: a measure's own columns,
    and the improving and worsening flags of any of its measures."""
    columns: dict[str, object] = {"improving": False, "worsening": False}
    for prefix, measure in MEASURES.items():
        values = measures.get(measure, {})
        columns.update({f"{prefix}_{name}": values.get(name) for name in FIELDS})
        for flag in ("improving", "worsening"):
            columns[flag] = columns[flag] or values.get(flag, False)
    return columns


def downgrade() -> None:
    with op.batch_alter_table("patient_summary") as batch_op:
        for prefix in MEASURES:
            batch_op.drop_constraint(f"{prefix}_reference_kind_known", type_="check")
            batch_op.drop_column(f"{prefix}_reference_kind")
