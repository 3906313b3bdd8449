"""One summary row per patient and measure; answers checked by their definitions only.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30

Issue 10 item 3: which measures head the dashboard comes from the instrument definitions, so
the summary can no longer be a column per measure (``pcl5_*``, ``phq9_*``). Each patient gets
a row in ``patient_measure_summary`` for every measure with a scorable total, headline or not,
computed from their records by the one rule (``services.summaries.measure_values`` and
``services.baseline``), as a fresh refresh writes them; then the old columns go. The
``value BETWEEN 0 AND 10`` fence on ``assessment_answer`` goes too: the engine refuses any
answer that is not one of its item's options, and a definition may use a wider scale.

The rows are read through plain tables (never the models, which describe the newest schema),
in three statements whatever the number of patients.
"""
from collections import defaultdict

from alembic import op
import sqlalchemy as sa

from outcomes.clock import clinic_zone
from outcomes.models import UTCDateTime
from outcomes.services.baseline import windows_from
from outcomes.services.summaries import measure_values


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

#: The measures that had columns of their own before this revision, by column prefix.
OLD_MEASURES = {"pcl5": "PCL-5", "phq9": "PHQ-9"}
OLD_FIELDS = ("baseline", "baseline_at", "reference_kind", "latest", "latest_at")
#: How many rows go in one INSERT.
CHUNK = 1000

measure_summary = sa.table(
    "patient_measure_summary", sa.column("patient_id"), sa.column("measure"),
    sa.column("clinic_id"), sa.column("baseline"), sa.column("baseline_at", UTCDateTime()),
    sa.column("reference_kind"), sa.column("latest"), sa.column("latest_at", UTCDateTime()),
    sa.column("improving", sa.Boolean()), sa.column("worsening", sa.Boolean()))


def upgrade() -> None:
    # The columns go first: nothing refers to patient_summary yet when SQLite copies it.
    with op.batch_alter_table("patient_summary") as batch_op:
        for prefix in OLD_MEASURES:
            batch_op.drop_constraint(f"{prefix}_reference_kind_known", type_="check")
        for prefix in OLD_MEASURES:
            for name in OLD_FIELDS:
                batch_op.drop_column(f"{prefix}_{name}")
        batch_op.drop_column("improving")
        batch_op.drop_column("worsening")
    op.create_table(
        "patient_measure_summary",
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("measure", sa.String(length=64), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.Column("baseline", sa.Integer(), nullable=False),
        sa.Column("baseline_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reference_kind", sa.String(length=16), nullable=False),
        sa.Column("latest", sa.Integer(), nullable=False),
        sa.Column("latest_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("improving", sa.Boolean(), nullable=False),
        sa.Column("worsening", sa.Boolean(), nullable=False),
        sa.CheckConstraint("reference_kind IN ('baseline', 'since first')",
                           name=op.f("ck_patient_measure_summary_reference_kind_known")),
        sa.ForeignKeyConstraint(["clinic_id"], ["clinic.id"],
                                name=op.f("fk_patient_measure_summary_clinic_id_clinic")),
        sa.ForeignKeyConstraint(["patient_id"], ["patient.id"],
                                name=op.f("fk_patient_measure_summary_patient_id_patient")),
        sa.PrimaryKeyConstraint("patient_id", "measure", name=op.f("pk_patient_measure_summary")),
    )
    op.create_index("ix_patient_measure_summary_clinic_measure", "patient_measure_summary",
                    ["clinic_id", "measure", "improving"], unique=False)
    fill_measure_rows()
    with op.batch_alter_table("assessment_answer") as batch_op:
        batch_op.drop_constraint(op.f("ck_assessment_answer_value_in_range"), type_="check")
    recreate_sqlite_append_only_triggers("assessment_answer")


def fill_measure_rows() -> None:
    """Every patient's measure rows, from their current scorable records and the first
    infusion of each of their courses."""
    bind = op.get_bind()
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
                       sa.column("administered_at", UTCDateTime()))
    later = version.alias("later")

    records = defaultdict(list)
    # The current scorable records: a record replaced by a correction is left out.
    for record in bind.execute(
            sa.select(assessment.c.patient_id, assessment.c.id, assessment.c.instrument_key,
                      assessment.c.administered_at, assessment.c.total, assessment.c.scorable)
            .where(assessment.c.scorable.is_(True),
                   ~sa.exists().where(correction.c.amends_id == assessment.c.id))):
        records[record.patient_id].append(record)
    firsts = defaultdict(list)
    # Each course's first infusion, as each infusion's latest version records it.
    for patient_id, first in bind.execute(
            sa.select(course.c.patient_id, sa.func.min(version.c.administered_at))
            .join(infusion, infusion.c.id == version.c.infusion_id)
            .join(course, course.c.id == infusion.c.course_id)
            .where(~sa.exists().where(later.c.infusion_id == version.c.infusion_id,
                                      later.c.version > version.c.version))
            .group_by(course.c.patient_id, course.c.id)):
        firsts[patient_id].append(first)
    rows = []
    for patient_id, clinic_id, timezone in bind.execute(
            sa.select(patient.c.id, patient.c.clinic_id, clinic.c.timezone)
            .join(clinic, clinic.c.id == patient.c.clinic_id)):
        if patient_id not in records:
            continue
        windows = windows_from(firsts[patient_id], clinic_zone(timezone))
        ordered = sorted(records[patient_id], key=lambda record: (record.administered_at,
                                                                  record.id))
        rows += [{"patient_id": patient_id, "clinic_id": clinic_id, "measure": measure, **values}
                 for measure, values in measure_values(ordered, windows).items()]
    for start in range(0, len(rows), CHUNK):
        bind.execute(measure_summary.insert(), rows[start:start + CHUNK])


def recreate_sqlite_append_only_triggers(table: str) -> None:
    """Batch mode rebuilt the table on SQLite, which dropped its triggers with the old one:
    the same refusal as revision 0001's. (PostgreSQL altered the table in place.)"""
    if op.get_bind().dialect.name != "sqlite":
        return
    for operation in ("UPDATE", "DELETE"):
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{operation.lower()}")
        op.execute(f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                   f"BEGIN SELECT RAISE(ABORT, '{table} rows are append-only: "
                   f"{operation} refused'); END")


def downgrade() -> None:
    # Only answers within 0-10 can go back under the old fence; a larger one stops here.
    with op.batch_alter_table("assessment_answer") as batch_op:
        batch_op.create_check_constraint(op.f("ck_assessment_answer_value_in_range"),
                                         "value BETWEEN 0 AND 10")
    recreate_sqlite_append_only_triggers("assessment_answer")
    # Adding columns copies no table, so patient_measure_summary may still refer to it.
    with op.batch_alter_table("patient_summary") as batch_op:
        for prefix in OLD_MEASURES:
            batch_op.add_column(sa.Column(f"{prefix}_baseline", sa.Integer(), nullable=True))
            batch_op.add_column(sa.Column(f"{prefix}_baseline_at", sa.DateTime(timezone=True),
                                          nullable=True))
            batch_op.add_column(sa.Column(f"{prefix}_latest", sa.Integer(), nullable=True))
            batch_op.add_column(sa.Column(f"{prefix}_latest_at", sa.DateTime(timezone=True),
                                          nullable=True))
            batch_op.add_column(sa.Column(f"{prefix}_reference_kind", sa.String(length=16),
                                          nullable=True))
        batch_op.add_column(sa.Column("improving", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column("worsening", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    fill_old_columns()
    op.drop_index("ix_patient_measure_summary_clinic_measure",
                  table_name="patient_measure_summary")
    op.drop_table("patient_measure_summary")
    with op.batch_alter_table("patient_summary") as batch_op:
        batch_op.alter_column("improving", server_default=None)
        batch_op.alter_column("worsening", server_default=None)
        for prefix in OLD_MEASURES:
            batch_op.create_check_constraint(
                f"{prefix}_reference_kind_known",
                f"({prefix}_reference_kind IS NULL AND {prefix}_baseline IS NULL) OR "
                f"({prefix}_reference_kind IN ('baseline', 'since first') "
                f"AND {prefix}_baseline IS NOT NULL)")


def fill_old_columns() -> None:
    """The old columns from the measure rows: a measure's own columns, and the flags of any
    of the old measures (as they were)."""
    summary = sa.table("patient_summary", sa.column("patient_id"),
                       *(sa.column(f"{prefix}_{name}") for prefix in OLD_MEASURES
                         for name in OLD_FIELDS),
                       sa.column("improving"), sa.column("worsening"))
    row = measure_summary.alias("row")

    def of(measure: str, name: str) -> sa.ScalarSelect:
        return (sa.select(row.c[name]).where(row.c.patient_id == summary.c.patient_id,
                                             row.c.measure == measure).scalar_subquery())

    def any_of(flag: str) -> sa.Exists:
        return sa.exists().where(row.c.patient_id == summary.c.patient_id,
                                 row.c.measure.in_(list(OLD_MEASURES.values())),
                                 row.c[flag].is_(True))

    op.get_bind().execute(summary.update().values({
        **{f"{prefix}_{name}": of(measure, name) for prefix, measure in OLD_MEASURES.items()
           for name in OLD_FIELDS},
        "improving": any_of("improving"), "worsening": any_of("worsening"),
    }))
