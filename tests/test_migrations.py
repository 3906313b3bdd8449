"""The migrations are the schema: they agree with the models, run up and down, and carry
existing data across (plans converted, audit rows chained)."""
from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from outcomes import migrate
from outcomes.jobs import outside_the_queue
from outcomes.audit_chain import development_keys
from outcomes.models import Base
from outcomes.services.audit import verify_chain

from .helpers import write_audit_rows_from_before_the_chain


@pytest.fixture
def engine(database_url):
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


def test_the_models_and_the_migrated_schema_agree(engine):
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={
            "compare_type": False, "include_name": outside_the_queue})
        differences = [d for d in compare_metadata(context, Base.metadata)
                       if not (isinstance(d, tuple) and d[0] == "remove_table"
                               and d[1].name == "alembic_version")]
    assert differences == []


def test_downgrade_to_the_first_revision_and_back(engine):
    migrate.downgrade(engine, "0001")
    migrate.upgrade(engine)
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT version_num FROM alembic_version")) == \
            ScriptDirectory.from_config(migrate.alembic_config(engine)).get_current_head()


def test_audit_rows_written_before_the_chain_are_chained_and_stay_append_only(engine):
    from sqlalchemy.orm import Session

    write_audit_rows_from_before_the_chain(engine)
    migrate.upgrade(engine)
    with Session(engine) as session:
        verification = verify_chain(session, development_keys("any"))
    assert (verification.rows, verification.findings) == (3, ())
    with pytest.raises(Exception, match="append-only"):
        with engine.begin() as connection:
            connection.execute(text("UPDATE audit_event SET action = 'x'"))
