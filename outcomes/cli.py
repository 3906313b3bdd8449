"""Flask commands: ``flask --app wsgi COMMAND``.

Bad input ends with a one-line message and exit status 2, having changed nothing.
"""
from __future__ import annotations

import datetime as dt
import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from . import migrate
from .extensions import db
from .services import accounts, audit, demo
from .services.audit import SYSTEM


class CommandError(click.ClickException):
    exit_code = 2


def register_commands(app: Flask) -> None:
    app.cli.add_command(database)
    app.cli.add_command(create_clinic)
    app.cli.add_command(create_user)
    app.cli.add_command(seed_demo)
    app.cli.add_command(audit_group)


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
    """Create a clinic."""
    try:
        clinic = accounts.create_clinic(db.session, SYSTEM, name, crisis_phone, timezone)
    except accounts.AccountError as error:
        raise CommandError(str(error)) from None
    db.session.commit()
    click.echo(f"Created clinic {clinic.name!r} (id {clinic.id}).")


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
def audit_verify() -> None:
    """Walk the hash chain of the whole audit trail and name the first row that does not fit."""
    checked, broken = audit.verify_chain(db.session)
    if broken is not None:
        click.echo(f"Audit trail BROKEN at row {broken.row_id}: {broken.problem}. "
                   f"{checked} rows before it are intact.", err=True)
        sys.exit(1)
    click.echo(f"Audit trail intact: {checked} rows, each chained to the one before.")
