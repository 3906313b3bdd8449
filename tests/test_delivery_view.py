"""Deliveries in staff's words (services/delivery_view.py)."""
from __future__ import annotations

from outcomes.services import deliveries
from outcomes.services.delivery_view import FAILURES


def test_every_reason_a_delivery_is_withdrawn_or_unsent_has_words():
    kinds = (deliveries.REMINDERS_OFF, deliveries.DISCHARGED, deliveries.QUESTIONNAIRE_DONE,
             deliveries.ALERT_ACKNOWLEDGED, deliveries.CONTACT_CHANGE_CLOSED,
             deliveries.NO_ADDRESS, deliveries.CHANNEL_OFF)
    assert [kind for kind in kinds if kind not in FAILURES] == []
    assert FAILURES[deliveries.DISCHARGED] == "withdrawn: the patient was discharged"
