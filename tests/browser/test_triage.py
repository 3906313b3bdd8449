"""Issue 9's triage loop in the browser, at 360 px and 1366 px: a patient discloses on PHQ-9
item 9; the clinician's dashboard count and the inbox show it at the top with the answer's
words and its age; the clinician acknowledges it with a note from the inbox; the count drops.
"""
from __future__ import annotations

import pytest
from sqlalchemy import select

from outcomes.models import Alert

from .conftest import check_page, expect, goto, sign_in
from .pages import PHQ9_ANSWERS, RESULT_URL, open_questionnaire, submit, tap_answers

pytestmark = pytest.mark.browser

NOTE = "Called at 14:10; safe, safety plan reviewed, seen tomorrow."
LAPTOP = {"width": 1366, "height": 768}
#: Enough patients, with long names, that a crowded dashboard shows how rows behave.
OTHERS = ["Aaron Abbott", "Maximiliana Featherstonehaugh-Worthington", "Bo Li", "Chen Wei",
          "Dolores Umbridge-Fitzgerald", "Eve Example", "Farah Haddad", "Gus Grant"]


@pytest.mark.parametrize("viewport", ["phone", "laptop"])
def test_a_disclosure_reaches_the_dashboard_and_the_inbox_and_is_acknowledged(
        live_server, new_context, factory, world, session, viewport):
    for name in OTHERS:
        factory.patient(world.clinic, world.clinician, with_login=False, name=name)
    name, patient_id = world.patient.display_name, world.patient.id

    # The patient, on their phone: help is one tap away on every page, before and after.
    patient = new_context().new_page()
    sign_in(patient, live_server, world.patient_user.email)
    expect(patient.get_by_role("link", name="Need help now?")).to_be_visible()
    open_questionnaire(patient, live_server, "phq9")
    tap_answers(patient, "phq9", PHQ9_ANSWERS)  # item 9: "Several days"
    submit(patient, status=302)
    expect(patient).to_have_url(RESULT_URL)
    expect(patient.locator(".crisis")).to_contain_text("has been told.")
    expect(patient.locator(".crisis")).not_to_contain_text("will contact you")
    patient.get_by_role("link", name="Need help now?").click()
    expect(patient.locator('.crisis a[href="tel:988"]')).to_be_visible()
    check_page(patient)

    page = new_context(desktop=viewport == "laptop").new_page()
    if viewport == "laptop":
        page.set_viewport_size(LAPTOP)
    sign_in(page, live_server, world.clinician.email)
    expect(page).to_have_url(f"{live_server}/clinic/patients")
    crisis_count = page.locator(".counts a").filter(has_text="open crisis alert")
    expect(crisis_count).to_have_text("1 open crisis alert")
    row = page.locator("tbody tr").first
    expect(row).to_contain_text(name)  # alerts first
    expect(row.locator(".alert-cell")).to_contain_text("PHQ-9 item 9 · 'Several days' · just now")
    check_page(page)
    if viewport == "laptop":
        check_rows_are_one_line_high(page)
    else:
        check_names_and_status_fit(page, width=360)

    crisis_count.click()
    expect(page).to_have_url(f"{live_server}/clinic/alerts?kind=crisis")
    first = page.locator(".inbox-item").first
    expect(first).to_contain_text(name)
    expect(first).to_contain_text("“Several days”")
    expect(first).to_contain_text("just now")
    expect(first).to_contain_text("Entered by the patient")
    check_page(page)
    first.get_by_label("What was done").fill(NOTE)
    first.get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_text("Alert acknowledged.")).to_be_visible()
    expect(page.locator(".inbox-item")).to_have_count(0)
    check_page(page)

    session.rollback()
    alert = session.scalars(select(Alert).where(Alert.patient_id == patient_id)).one()
    assert (alert.acknowledged_by_id, alert.acknowledgement_note) == (world.clinician.id, NOTE)

    goto(page, f"{live_server}/clinic/patients")
    expect(page.locator(".counts a").filter(has_text="open crisis alert")).to_have_text(
        "0 open crisis alerts")
    expect(page.locator("tbody tr").filter(has_text=name).locator(".alert-cell")).to_have_text("—")
    check_page(page)


@pytest.mark.parametrize("viewport", ["phone", "laptop"])
def test_the_demo_clinics_dashboard_keeps_its_shape(live_server, new_context, demo, viewport):
    """Months of data (alerts, chips, courses): still one line per row on a laptop, and every
    name and status on a phone's screen."""
    page = new_context(desktop=viewport == "laptop").new_page()
    if viewport == "laptop":
        page.set_viewport_size(LAPTOP)
    sign_in(page, live_server, *demo[0])
    expect(page.locator("tbody tr")).to_have_count(12)
    expect(page.locator("tbody tr .alert-cell .tag").first).to_contain_text(" ago")
    check_page(page)
    if viewport == "laptop":
        check_rows_are_one_line_high(page)
    else:
        check_names_and_status_fit(page, width=360)


def check_rows_are_one_line_high(page) -> None:
    """Every row of the dashboard is one line of text high (plus the cell's padding)."""
    heights = page.evaluate("""() => [...document.querySelectorAll('table.dashboard tbody tr')]
      .map((row) => {
        const cell = getComputedStyle(row.querySelector('td'));
        const line = parseFloat(cell.lineHeight);
        const padding = parseFloat(cell.paddingTop) + parseFloat(cell.paddingBottom);
        return {height: row.getBoundingClientRect().height, limit: 1.5 * line + padding};
      })""")
    assert heights and all(h["height"] <= h["limit"] for h in heights), heights


def check_names_and_status_fit(page, width: int) -> None:
    """Each patient's name, alert and status are inside the screen: nothing to scroll to."""
    boxes = page.evaluate("""() => [...document.querySelectorAll('table.dashboard tbody tr')]
      .flatMap((row) => ['.patient a', '.alert-cell', '.status']
        .map((selector) => row.querySelector(selector).getBoundingClientRect()))
      .map((box) => ({left: box.left, right: box.right, width: box.width}))""")
    assert boxes and all(b["left"] >= 0 and b["right"] <= width and b["width"] > 0
                         for b in boxes), boxes
