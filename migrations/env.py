"""Alembic environment: runs against the connection the app's CLI hands it, or against
``sqlalchemy.url`` when Alembic is called directly."""
from alembic import context
from sqlalchemy import engine_from_config, pool

from outcomes.jobs import outside_the_queue
from outcomes.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # procrastinate's tables are the package's (migration 0011), not the models'.
        include_name=outside_the_queue,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    engine = engine_from_config(
        config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with engine.connect() as connection:
        run_migrations(connection)
