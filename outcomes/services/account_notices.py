"""Account notices (issue 12): the messages about a person's own account (a password changed,
a reset link, a sign-in factor added or reset, a contact address to confirm), queued as
'account' deliveries that the worker sends with their fixed wording (services.deliveries).
One writer, so that every notice is keyed and addressed alike."""
from __future__ import annotations

import secrets

from sqlalchemy.orm import Session

from ..models import Delivery, User


def notify_account(session: Session, user: User, notice: str, *,
                   channel: str = "email") -> Delivery:
    """Queue the account notice ``notice`` (models.ACCOUNT_NOTICES) to ``user`` by
    ``channel``. Each notice is a message of its own, so its key is new each time."""
    delivery = Delivery(key=f"account:{notice}:{user.id}:{secrets.token_hex(8)}",
                        clinic_id=user.clinic_id, purpose="account", channel=channel,
                        user_id=user.id, account_notice=notice)
    session.add(delivery)
    return delivery
