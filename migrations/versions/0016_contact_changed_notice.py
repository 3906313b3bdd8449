"""A sixth account notice: a patient's contact address was changed (told to the account's
sign-in email).

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30

Issue 12's security review: a confirmed contact change is announced to the sign-in email, so
a change made from a borrowed phone does not move a patient's reminders unseen.
"""
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

NOTICES_0015 = ("password_reset", "password_changed", "factors_reset", "confirm_contact",
                "factor_added")
NOTICES_0016 = NOTICES_0015 + ("contact_changed",)


def _account_notice_check(notices: tuple[str, ...]) -> str:
    return ("(purpose = 'account') = (account_notice IS NOT NULL) AND (account_notice IS NULL"
            f" OR (account_notice IN {notices} AND user_id IS NOT NULL))")


def _replace_check(notices: tuple[str, ...]) -> None:
    with op.batch_alter_table("delivery") as batch_op:
        batch_op.drop_constraint("account_delivery_names_notice", type_="check")
        batch_op.create_check_constraint("account_delivery_names_notice",
                                         _account_notice_check(notices))


def upgrade() -> None:
    _replace_check(NOTICES_0016)


def downgrade() -> None:
    op.execute("DELETE FROM delivery WHERE account_notice = 'contact_changed'")
    _replace_check(NOTICES_0015)
