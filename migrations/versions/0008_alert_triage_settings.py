"""Alert triage: clinic response-time wording.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30

Reserved for: issue 9 items 4-6. Filled in by that work; until then it changes nothing.
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
