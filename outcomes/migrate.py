"""Create or upgrade the schema with Alembic, from the app's own database settings."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from .database import set_statement_timeout

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # configparser reads "%" as interpolation: a URL-encoded option must be escaped.
    config.set_main_option("sqlalchemy.url",
                           engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to ``revision`` (the newest by default); safe to run repeatedly."""
    config = alembic_config(engine)
    with engine.begin() as connection:
        # Rewriting a large table may take longer than any page's statement may.
        set_statement_timeout(connection, None)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def revision(engine: Engine, message: str, autogenerate: bool = True) -> None:
    """Write a new migration script, compared against the models when ``autogenerate``."""
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.revision(config, message=message, autogenerate=autogenerate)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the database back to ``revision`` (for tests of the migrations themselves)."""
    config = alembic_config(engine)
    with engine.begin() as connection:
        set_statement_timeout(connection, None)
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
