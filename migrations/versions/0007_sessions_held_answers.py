"""Sessions with idle timeouts; answers held across a sign-in.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

Reserved for: issue 8 items 5-6. Filled in by that work; until then it changes nothing.
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
