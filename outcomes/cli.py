"""Flask commands: ``flask --app wsgi COMMAND``.

Bad input ends with a one-line message and exit status 2, having changed nothing.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import sys
import tempfile
from collections.abc import Iterable

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from . import demo, migrate
from .audit_chain import checkpoint_line
from .extensions import db
from .forms import date_problem
from .jobs.cli import worker
from .models import Clinic, Patient
from .services import accounts, audit, clinic_settings, exports, fhir_export
from .services.audit import SYSTEM


class CommandError(click.ClickException):
    exit_code = 2


def register_commands(app: Flask) -> None:
    app.cli.add_command(database)
    app.cli.add_command(create_clinic)
    app.cli.add_command(create_user)
    app.cli.add_command(set_alert_response)
    app.cli.add_command(seed_demo)
    app.cli.add_command(audit_group)
    app.cli.add_command(export)
    app.cli.add_command(worker)


database = AppGroup("db", help="Create or upgrade the database schema.")


@database.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Create the schema, or bring it up to date (safe to run repeatedly)."""
    migrate.upgrade(db.engine, revision)
    click.echo(f"Database is at revision {revision}.")


@database.command("revision")
@click.option("-m", "--message", required=True, help="What the migration does.")
def db_revision(message: str) -> None:
    """Write a new migration by comparing the models with the database (for developers)."""
    migrate.revision(db.engine, message)


@click.command("create-clinic")
@with_appcontext
@click.argument("name")
@click.option("--crisis-phone", required=True, help="The clinic's own number for patients in crisis.")
@click.option("--timezone", default="America/New_York", show_default=True,
              help="IANA time zone used to show times to the clinic.")
def create_clinic(name: str, crisis_phone: str, timezone: str) -> None:
    """Create a clinic. Its crisis phone and time zone are checked, and stored, as the
    clinic's settings page checks and stores them."""
    try:
        crisis_phone = clinic_settings.crisis_phone_number(
            crisis_phone.strip(), current_app.config["PHONE_REGION"])
        timezone = clinic_settings.zone_name(timezone)
        clinic = accounts.create_clinic(db.session, SYSTEM, name, crisis_phone, timezone)
    except ValueError as error:  # the phone's ContactError, the zone's, AccountError
        raise CommandError(str(error)) from None
    db.session.commit()
    click.echo(f"Created clinic {clinic.name!r} (id {clinic.id}).")


@click.command("set-alert-response")
@with_appcontext
@click.option("--clinic", "clinic_name", required=True, help="The clinic's name.")
@click.option("--wording", help="What patients are told, after a disclosure opens an alert, "
              "about when the care team responds (up to "
              f"{clinic_settings.RESPONSE_WORDING_MAX} characters).")
@click.option("--clear", is_flag=True, help="Say nothing about response times.")
def set_alert_response(clinic_name: str, wording: str | None, clear: bool) -> None:
    """Set what the clinic tells patients about when its care team responds to an alert.
    Until it is set, patients are told only that the care team has been told."""
    if clear == (wording is not None):
        raise CommandError("Give either --wording TEXT or --clear.")
    if wording is not None and not wording.strip():
        raise CommandError("The wording is blank; give a sentence, or --clear.")
    clinic = accounts.find_clinic(db.session, clinic_name)
    if clinic is None:
        raise CommandError(f"No clinic named {clinic_name!r}; create it with create-clinic.")
    try:
        clinic_settings.set_alert_response_wording(db.session, SYSTEM, clinic, wording)
    except clinic_settings.SettingsRefused as error:
        raise CommandError(str(error)) from None
    db.session.commit()
    click.echo(f"{clinic.name}: " + (f"patients are told {clinic.alert_response_wording!r}"
                                     if clinic.alert_response_wording
                                     else "patients are told nothing about response times."))


@click.command("create-user")
@with_appcontext
@click.option("--clinic", "clinic_name", required=True, help="The clinic's name.")
@click.option("--role", type=click.Choice(["clinician", "admin"]), required=True)
@click.option("--email", required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def create_user(clinic_name: str, role: str, email: str, password_stdin: bool) -> None:
    """Create a clinician or admin account. The password is prompted for unless
    --password-stdin is given."""
    clinic = accounts.find_clinic(db.session, clinic_name)
    if clinic is None:
        raise CommandError(f"No clinic named {clinic_name!r}; create it with create-clinic.")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = accounts.create_staff_user(db.session, SYSTEM, clinic, role, email, password)
    except accounts.AccountError as error:
        raise CommandError(str(error)) from None
    db.session.commit()
    click.echo(f"Created {role} {user.email} at {clinic.name}.")


@click.command("seed-demo")
@with_appcontext
@click.option("--patients", type=click.IntRange(1, 100_000), default=40, show_default=True)
@click.option("--weeks", type=click.IntRange(2, 104), default=16, show_default=True,
              help="Length of the history, in weeks before today.")
@click.option("--seed", type=int, default=2026, show_default=True)
@click.option("--today", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Pin the history to end on this date (default: today), for identical runs.")
@click.option("--if-empty", is_flag=True, help="Do nothing when any clinic exists already.")
def seed_demo(patients: int, weeks: int, seed: int, today: dt.datetime | None,
              if_empty: bool) -> None:
    """Create a demo clinic whose patients have realistic treatment histories."""
    if current_app.config["OUTCOMES_ENV"] == "production":
        raise CommandError("seed-demo creates accounts with published passwords; it runs only "
                           "with OUTCOMES_ENV=development.")
    if if_empty and demo.any_clinic(db.session):
        click.echo("The database already has a clinic; no demo data added.")
        if accounts.find_clinic(db.session, demo.CLINIC_NAME):
            click.echo(demo.describe_logins())
        return
    try:
        summary = demo.seed_demo(db.session, patients=patients, weeks=weeks, seed=seed,
                                 today=today.date() if today else None)
    except demo.DemoError as error:
        raise CommandError(str(error)) from None
    db.session.commit()
    click.echo(summary.describe())


audit_group = AppGroup("audit", help="The tamper-evident audit trail.")


@audit_group.command("verify")
@click.option("--checkpoints", "checkpoint_file",
              help="Read the checkpoints from this file instead of AUDIT_CHECKPOINT_PATH "
                   "(a copy kept elsewhere, such as the scheduler's log of the command).")
def audit_verify(checkpoint_file: str | None) -> None:
    """Check every row of the audit trail against its key and the row before it, and the
    chain against the signed checkpoints; name the first row of each break (exit status 1)."""
    keys = audit.audit_keys()
    if checkpoint_file is not None and not os.path.isfile(checkpoint_file):
        raise CommandError(f"No checkpoint file {checkpoint_file!r}.")
    path = checkpoint_file or current_app.config["AUDIT_CHECKPOINT_PATH"]
    try:
        checkpoints, findings = audit.read_checkpoint_file(path, keys) if path else ([], [])
    except OSError as error:
        raise CommandError(f"Cannot read the checkpoint file {path!r}: "
                           f"{error.strerror or error}.") from None
    verification = audit.verify_chain(db.session, keys, checkpoints)
    findings = [*findings, *verification.findings]
    for finding in findings:
        click.echo(finding.describe(), err=True)
    if findings:
        sys.exit(1)
    click.echo(f"Audit trail intact: {verification.rows} rows, each signed and chained to "
               "the one before.")
    click.echo(_checkpoint_coverage(path, verification))
    if keys.development:
        click.echo("Signed with the development audit key derived from SECRET_KEY: "
                   "not for real records.")


def _checkpoint_coverage(path: str, verification: audit.Verification) -> str:
    unseen = "rows removed from the end of the trail cannot be detected"
    if not path:
        return f"No checkpoints (AUDIT_CHECKPOINT_PATH is not set): {unseen}."
    checkpoint = verification.checkpoint
    if checkpoint is None:
        return f"No checkpoint written yet (flask audit checkpoint): {unseen}."
    covered = f"The newest checkpoint ({checkpoint.written_at}) covers rows 1-{checkpoint.last_id}"
    if checkpoint.last_id == verification.last_id:
        return f"{covered}: every row."
    return (f"{covered}; rows {checkpoint.last_id + 1}-{verification.last_id} are newer, "
            "and removing them from the end could not be detected.")


@audit_group.command("checkpoint")
def audit_checkpoint() -> None:
    """Check the rows written since the newest checkpoint, then append a signed checkpoint
    of the chain's head to AUDIT_CHECKPOINT_PATH and print it. Run it from one scheduler
    every few minutes (docs/audit.md)."""
    path = current_app.config["AUDIT_CHECKPOINT_PATH"]
    if not path:
        raise CommandError("AUDIT_CHECKPOINT_PATH is not set: name the file the checkpoints "
                           "are appended to (outside the database).")
    try:
        checkpoint, written = audit.write_checkpoint(db.session, audit.audit_keys(), path)
    except audit.ChainBroken as broken:
        for finding in broken.findings:
            click.echo(finding.describe(), err=True)
        click.echo("No checkpoint written.", err=True)
        sys.exit(1)
    except OSError as error:
        raise CommandError(f"Cannot write the checkpoint file {path!r}: "
                           f"{error.strerror or error}.") from None
    finally:
        db.session.rollback()  # the command only reads: end the transaction (SQLite's lock)
    if not written:
        click.echo(f"No rows since the checkpoint of {checkpoint.written_at}; nothing written.",
                   err=True)
        return
    # The signed line on standard output too, so the scheduler's log keeps a second copy.
    click.echo(checkpoint_line(checkpoint))
    click.echo(f"Checkpoint written: {checkpoint.count} rows, up to row {checkpoint.last_id}.",
               err=True)


class OneLineUsage(click.Command):
    """Reports a mistake in the command line like any other bad input: one line, status 2."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as error:
            raise CommandError(error.format_message()) from None


@click.command("export", cls=OneLineUsage, help=(
    f"Export KIND for a clinic: {', '.join(exports.KINDS)} as CSV, or {fhir_export.KIND} (one "
    "patient's FHIR R4 Bundle). Each export is recorded in the audit trail."))
@with_appcontext
@click.argument("kind")
@click.option("--clinic", "clinic_name", required=True, help="The clinic's name.")
@click.option("--from", "date_from", help="First day, a clinic date (YYYY-MM-DD).")
@click.option("--to", "date_to", help="Last day, a clinic date (YYYY-MM-DD).")
@click.option("--patient", help="Only the patient with this clinic identifier.")
@click.option("--instrument", help="Only this questionnaire (its key, e.g. phq9).")
@click.option("--deidentified", is_flag=True,
              help="Pseudonyms for people and records, days since the first infusion for "
                   "dates, no free text (see docs/exports.md).")
@click.option("--output", type=click.Path(dir_okay=False),
              help="Write to this file (default: standard output).")
def export(kind: str, clinic_name: str, date_from: str | None, date_to: str | None,
           patient: str | None, instrument: str | None, deidentified: bool,
           output: str | None) -> None:
    """The ``export`` command; its help names the kinds, from ``exports.KINDS``."""
    if kind != fhir_export.KIND and kind not in exports.KINDS:
        raise CommandError(f"Unknown export {kind!r}; choose one of "
                           f"{', '.join([*exports.KINDS, fhir_export.KIND])}.")
    clinic = accounts.find_clinic(db.session, clinic_name)
    if clinic is None:
        raise CommandError(f"No clinic named {clinic_name!r}.")
    if output is not None and not os.path.isdir(os.path.dirname(os.path.abspath(output))):
        raise CommandError(f"No folder to write {output!r} in.")
    if kind == fhir_export.KIND:
        _export_fhir(clinic, patient, deidentified, output,
                     unused=date_from or date_to or instrument)
        return
    try:
        request = exports.prepare_export(
            db.session, clinic, kind, role="system",
            date_from=_date(date_from, "--from", clinic.timezone),
            date_to=_date(date_to, "--to", clinic.timezone), patient_identifier=patient,
            instrument=instrument, deidentified=deidentified)
    except exports.ExportError as error:
        raise CommandError(str(error)) from None
    # End this session's transaction (on SQLite, the write lock) before the long read, which
    # goes through a connection of its own.
    db.session.rollback()
    with exports.read_connection(db.engine) as connection:
        stream = exports.CsvStream(exports.export_rows(connection, request))
        _write(output, stream)
    patient_record = db.session.get(Patient, request.patient_id) if request.patient_id else None
    audit.record(db.session, SYSTEM, "export.csv", clinic_id=request.clinic_id,
                 patient=patient_record, object_type="clinic", object_id=request.clinic_id,
                 details={**request.audit_details(stream.rows_written),
                          "output": "file" if output else "stdout"})
    db.session.commit()
    click.echo(f"Exported {stream.rows_written} {kind} rows.", err=True)


def _export_fhir(clinic: Clinic, identifier: str | None, deidentified: bool, output: str | None,
                 unused: str | None) -> None:
    if unused:
        raise CommandError("The fhir export takes --patient (and --deidentified) only.")
    patient_id = exports.patient_id_for(db.session, clinic.id, identifier)
    if patient_id is None:
        raise CommandError("The fhir export needs --patient with a clinic identifier of this "
                           "clinic." if not identifier else
                           f"No patient with identifier {identifier!r} at this clinic.")
    patient = db.session.get(Patient, patient_id)
    bundle = fhir_export.patient_bundle(db.session, patient, deidentified=deidentified)
    _write(output, [json.dumps(bundle, ensure_ascii=False, indent=1).encode() + b"\n"])
    audit.record(db.session, SYSTEM, "export.fhir", patient=patient, object_type="patient",
                 object_id=patient.id,
                 details={"deidentified": deidentified,
                          "resources": fhir_export.resource_counts(bundle),
                          "output": "file" if output else "stdout"})
    db.session.commit()
    click.echo(f"Exported a FHIR Bundle of {len(bundle['entry'])} resources.", err=True)


def _date(value: str | None, flag: str, timezone: str) -> dt.date | None:
    """A filter date, within the bounds the forms' dates keep (``forms.date_problem``)."""
    if not value:
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{flag} must be a date as YYYY-MM-DD, not {value!r}.") from None
    problem = date_problem(day, flag, timezone)
    if problem:
        raise CommandError(problem)
    return day


def _write(output: str | None, chunks: Iterable[bytes]) -> None:
    """Write to standard output, or to ``output`` whole or not at all: a temporary file
    readable by its owner only, renamed into place at the end."""
    if output is None:
        stdout = sys.stdout.buffer
        for chunk in chunks:
            stdout.write(chunk)
        stdout.flush()
        return
    folder = os.path.dirname(os.path.abspath(output))
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".export-", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as file:
            for chunk in chunks:
                file.write(chunk)
        os.replace(temporary, output)
    except BaseException:
        os.unlink(temporary)
        raise
