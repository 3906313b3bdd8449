"""The flask commands: clinics, users and the demo clinic. Bad input exits 2, changes nothing."""
from __future__ import annotations

import shutil

from sqlalchemy import func, select

import instruments
from outcomes import create_app
from outcomes.extensions import db
from outcomes.models import Alert, Assessment, Clinic, Patient, User

from .conftest import base_config


def test_create_clinic_and_a_clinician_with_a_password_from_stdin(runner, session):
    result = runner.invoke(args=["create-clinic", "Lakeside", "--crisis-phone",
                                 "(201) 555-0199"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["create-user", "--clinic", "Lakeside", "--role", "clinician",
                                 "--email", "Dr.Lee@Example.org", "--password-stdin"],
                           input="a long enough password\n")
    assert result.exit_code == 0, result.output
    user = session.scalar(select(User).where(User.email == "dr.lee@example.org"))
    assert user.role == "clinician" and user.password_hash.startswith("$argon2id$")
    assert user.clinic.name == "Lakeside"


def test_a_new_clinics_phone_and_zone_are_stored_as_its_settings_page_stores_them(
        runner, session):
    result = runner.invoke(args=["create-clinic", "Lakeside", "--crisis-phone",
                                 "+1 201 555 0199", "--timezone", "europe/london"])
    assert result.exit_code == 0, result.output
    clinic = session.scalar(select(Clinic).where(Clinic.name == "Lakeside"))
    assert (clinic.crisis_phone, clinic.timezone) == ("(201) 555-0199", "Europe/London")


def test_create_user_prompts_for_the_password_twice(runner, session):
    runner.invoke(args=["create-clinic", "Lakeside", "--crisis-phone", "(201) 555-0199"])
    result = runner.invoke(args=["create-user", "--clinic", "Lakeside", "--role", "admin",
                                 "--email", "boss@example.org"],
                           input="a long enough password\na long enough password\n")
    assert result.exit_code == 0, result.output
    assert session.scalar(select(User).where(User.email == "boss@example.org")).role == "admin"


def test_bad_input_exits_2_with_a_clear_message_and_changes_nothing(runner, session):
    runner.invoke(args=["create-clinic", "Lakeside", "--crisis-phone", "(201) 555-0199"])
    cases = [
        (["create-clinic", "Lakeside", "--crisis-phone", "988"], "already exists"),
        (["create-clinic", "Other", "--crisis-phone", "988", "--timezone", "Mars/Base"],
         "“Mars/Base” is not a time zone this server knows"),
        (["create-clinic", "Other", "--crisis-phone", "+1 555 0100"],
         "That is not a valid phone number in US"),
        (["create-clinic", "Other", "--crisis-phone", "911"], "That is the emergency number"),
        (["create-clinic", "  ", "--crisis-phone", "988"], "needs a name"),
        (["create-user", "--clinic", "Nowhere", "--role", "clinician", "--email", "a@example.org",
          "--password-stdin"], "No clinic named"),
        (["create-user", "--clinic", "Lakeside", "--role", "clinician", "--email", "not-an-email",
          "--password-stdin"], "not a valid email"),
        (["create-user", "--clinic", "Lakeside", "--role", "patient", "--email", "a@example.org",
          "--password-stdin"], "Invalid value for '--role'"),
        (["seed-demo", "--patients", "0"], "Invalid value for '--patients'"),
    ]
    for args, message in cases:
        result = runner.invoke(args=args, input="a long enough password\n")
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
    short = runner.invoke(args=["create-user", "--clinic", "Lakeside", "--role", "clinician",
                                "--email", "a@example.org", "--password-stdin"], input="short\n")
    assert short.exit_code == 2 and "at least 12" in short.output
    assert session.scalar(select(func.count(Clinic.id))) == 1
    assert session.scalar(select(func.count(User.id))) == 0


def test_db_upgrade_is_safe_to_run_again(runner):
    result = runner.invoke(args=["db", "upgrade"])
    assert result.exit_code == 0 and "head" in result.output


def seed(runner, *extra):
    return runner.invoke(args=["seed-demo", "--patients", "12", "--weeks", "10", "--seed", "5",
                               "--today", "2026-06-01", *extra])


def snapshot(session):
    rows = session.execute(
        select(Patient.identifier, Patient.display_name, Assessment.instrument_key,
               Assessment.administered_at, Assessment.total, Assessment.flags)
        .join(Assessment, Assessment.patient_id == Patient.id)
        .order_by(Patient.identifier, Assessment.administered_at, Assessment.instrument_key)
    ).all()
    return [tuple(row) for row in rows]


def test_seed_demo_builds_realistic_courses_whose_scores_obey_the_rules(runner, session):
    result = seed(runner)
    assert result.exit_code == 0, result.output
    assert "dr.rivera@riverside.example" in result.output and "demo-patient-pass" in result.output
    patients = session.scalars(select(Patient)).all()
    assert len(patients) == 12
    assessments = session.scalars(select(Assessment)).all()
    keys = {a.instrument_key for a in assessments}
    assert keys == {"pcl5", "pcl5-weekly", "phq9", "gad7", "after-infusion"}
    for assessment in assessments:  # every stored score is what the instruments package says
        answers = {a.item_number: a.value for a in assessment.answers}
        items = instruments.get(assessment.instrument_key).items
        score = instruments.score(assessment.instrument_key,
                                  [answers.get(item.number) for item in items])
        assert (assessment.total, assessment.band, assessment.flags) == \
            (score.total, score.band, dict(score.flags))
    open_risk = session.scalars(select(Alert).where(
        Alert.kind == "suicide_risk", Alert.acknowledged_at.is_(None))).all()
    assert open_risk, "the demo must show at least one open item-9 alert"
    first = {}
    last = {}
    for a in sorted(assessments, key=lambda a: a.administered_at):
        if a.instrument_key in ("pcl5", "pcl5-weekly"):
            first.setdefault(a.patient_id, a.total)
            last[a.patient_id] = a.total
    changes = [last[p] - first[p] for p in first]
    assert min(changes) <= -15 and max(changes) >= -5, "responders and non-responders both"


def test_seed_demo_is_deterministic_and_refuses_to_seed_twice(runner, session, sqlite_template,
                                                             tmp_path):
    seed(runner)
    first = snapshot(session)
    assert seed(runner).exit_code == 2
    again = seed(runner, "--if-empty")
    assert again.exit_code == 0 and "no demo data added" in again.output
    assert snapshot(session) == first
    # A second database seeded with the same arguments holds the same data.
    path = tmp_path / "second.sqlite3"
    shutil.copyfile(sqlite_template, path)
    second_app = create_app(base_config(f"sqlite:///{path}"))
    assert seed(second_app.test_cli_runner()).exit_code == 0
    with second_app.app_context():
        second = snapshot(db.session)
        db.engine.dispose()
    assert [row[:3] + row[4:] for row in second] == [row[:3] + row[4:] for row in first]
    assert [row[3] for row in second] == [row[3] for row in first]


def test_seed_demo_refuses_to_run_in_production(database_url):
    app = create_app({**base_config(database_url), "OUTCOMES_ENV": "production"})
    result = app.test_cli_runner().invoke(args=["seed-demo", "--patients", "2"])
    assert result.exit_code == 2 and "OUTCOMES_ENV=development" in result.output
