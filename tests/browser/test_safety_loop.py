"""On a phone: a PHQ-9 sent back incomplete before item 9 has an answer keeps a short line with
the crisis numbers at the top and opens nothing; completed with item 9 above 0, it shows the
crisis panel first and opens one alert."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from outcomes.models import Alert

from .conftest import check_page, expect, sign_in
from .pages import (
    assessment_count,
    check_crisis_resources_come_first,
    open_questionnaire,
    submit,
    tap_answers,
)

pytestmark = pytest.mark.browser


def test_a_short_crisis_line_until_item9_is_answered_then_the_panel_and_one_alert(
        live_server, phone, world, session):
    patient_id = world.patient.id
    sign_in(phone, live_server, world.patient_user.email)
    open_questionnaire(phone, live_server, "phq9")
    tap_answers(phone, "phq9", [None, 2, 1, 2, 0, 1, 1, 0, None, None])  # items 1 and 9 blank
    submit(phone, status=422)

    line = phone.locator(".crisis-line")
    expect(line).to_be_visible()
    expect(phone.locator(".crisis")).to_have_count(0)
    for href in ("tel:988", "sms:988", "tel:911"):
        expect(line.locator(f'a[href="{href}"]')).to_be_visible()
    expect(line).to_contain_text(world.clinic.crisis_phone)
    assert all(link.bounding_box()["height"] >= 44 for link in line.locator("a").all())
    assert line.bounding_box()["y"] < phone.locator("#error-summary").bounding_box()["y"]
    expect(phone.locator("fieldset.invalid")).to_have_count(1)  # item 1: item 9 may stay blank
    check_page(phone)
    session.rollback()
    assert session.scalars(select(Alert).where(Alert.patient_id == patient_id)).all() == []

    tap_answers(phone, "phq9", [1, None, None, None, None, None, None, None, 2, None])
    submit(phone, status=302)
    check_crisis_resources_come_first(phone, world.clinic.crisis_phone)
    assert assessment_count(session, patient_id) == 1
    alert, = session.scalars(select(Alert).where(Alert.patient_id == patient_id)).all()
    assert (alert.value, alert.evidence) == ("positive", {"9": 2})
