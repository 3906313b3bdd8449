"""The patient's own chart on a 360-px phone: a one-sentence summary from the reference
score (baseline, or the first score) to the latest, the chart drawn, and the same figures
as a table for screen readers."""
from __future__ import annotations

import datetime as dt
import re

import pytest

from outcomes import clock

from .conftest import check_page, expect, sign_in

pytestmark = pytest.mark.browser


def test_the_patients_chart_has_a_summary_sentence_and_a_table(live_server, phone, world,
                                                                 factory):
    now = clock.utcnow()
    for weeks_ago, answers in ((3, [3] * 20), (2, [2] * 20), (0, [1] * 20)):
        factory.assessment(world.patient, "pcl5" if weeks_ago == 3 else "pcl5-weekly", answers,
                           at=now - dt.timedelta(weeks=weeks_ago, hours=1))
    sign_in(phone, live_server, world.patient_user.email)
    block = phone.locator(".chart-block").filter(has_text="PCL-5").first
    expect(block.locator(".chart-summary")).to_have_text(
        # No course: the reference is the first score, and the sentence names it so.
        re.compile(r"^Your PCL-5 score went from 60 on \d+ \w+ \(your first score\) "
                   r"to 20 today\.$"))
    expect(block.locator(".chart .main-svg").first).to_be_visible()
    block.locator("details summary").click()
    table = block.locator("details table").first
    expect(table).to_be_visible()
    expect(table.locator("tbody tr")).to_have_count(3)
    expect(table).to_contain_text("60")
    check_page(phone)
