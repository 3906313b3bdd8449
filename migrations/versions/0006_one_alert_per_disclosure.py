"""One alert per disclosure: alert links, open-alert uniqueness.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30

Reserved for: issue 9 items 2-3. Filled in by that work; until then it changes nothing.
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
