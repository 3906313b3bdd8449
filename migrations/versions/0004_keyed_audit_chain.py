"""Keyed audit chain: key id per row, checkpoints.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

Reserved for: issue 8 item 4. Filled in by that work; until then it changes nothing.
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
