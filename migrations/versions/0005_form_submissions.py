"""One record per staff form: submission keys.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30

Reserved for: issue 8 item 3. Filled in by that work; until then it changes nothing.
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
