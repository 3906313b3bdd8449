"""What several browser tests do: a patient answering a questionnaire, the crisis resources'
place on the result, a clinician filling in the infusion form, the count of stored
questionnaires. Plain functions and answers (the fixtures live in conftest.py): no test
module imports another."""
from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import func, select

import instruments
from outcomes.models import Assessment

from .conftest import expect, goto

PCL5_ANSWERS = [2, 3, 1, 4, 0, 2, 3, 1, 2, 2, 3, 4, 1, 0, 2, 3, 1, 2, 0, 1]
#: Item 9 ("better off dead or of hurting yourself") answered "Several days"; item 10 is
#: optional and left blank.
PHQ9_ANSWERS = [1, 2, 1, 2, 0, 1, 1, 0, 1, None]
#: Item 8 ("how difficult") is optional and left blank, as PHQ-9's item 10.
GAD7_ANSWERS = [1, 1, 2, 0, 1, 3, 0, None]
# A fragment (a link to a question followed before sending) survives the redirect.
RESULT_URL = re.compile(r"/me/results/(\d+)(#[\w-]*)?$")

#: The infusion form's vital signs, as a clinician types them.
VITALS = {"Systolic before (mmHg)": "124", "Diastolic before (mmHg)": "80",
          "Heart rate before (beats/min)": "70", "SpO2 before (%)": "98",
          "Systolic after (mmHg)": "130", "Diastolic after (mmHg)": "82",
          "Heart rate after (beats/min)": "76", "SpO2 after (%)": "97"}


def tap_answers(page, key: str, answers: Sequence[int | None]) -> None:
    """Tap each answer's words, as a thumb would; ``None`` leaves that item alone."""
    for item, value in zip(instruments.get(key).items, answers, strict=True):
        if value is None:
            continue
        words = next(option.label for option in item.options if option.value == value)
        option = page.locator(f"#item-{item.number} li.option").filter(
            has=page.locator(f'input[value="{value}"]'))
        option.get_by_text(words).click()


def open_questionnaire(page, base_url: str, key: str) -> None:
    """Open a questionnaire from the home page's "Start" button, as a patient would."""
    title = instruments.get(key).title
    goto(page, f"{base_url}/me/")
    page.locator(".card-list li").filter(has_text=title).get_by_role("link", name="Start").click()
    expect(page.get_by_role("heading", level=1, name=title)).to_be_visible()


def submit(page, status: int):
    """Press the send button; return the POST's response after checking its status."""
    with page.expect_response(lambda response: response.request.method == "POST") as posted:
        page.get_by_role("button", name="Send my answers").click()
    assert posted.value.status == status, posted.value.status
    page.wait_for_load_state()
    return posted.value


def check_crisis_resources_come_first(page, crisis_phone: str) -> None:
    """988 (call and text), 911 and the clinic's own number, before anything else on the page
    and on the phone's first screen."""
    crisis = page.locator(".crisis")
    expect(crisis).to_be_visible()
    expect(crisis.locator('a[href="tel:988"]')).to_be_visible()
    expect(crisis.locator('a[href="sms:988"]')).to_be_visible()
    expect(crisis).to_contain_text("988")
    expect(crisis).to_contain_text("911")
    expect(crisis).to_contain_text(crisis_phone)
    expect(crisis.locator(f'a[href="tel:{crisis_phone.replace(" ", "")}"]')).to_be_visible()
    assert page.evaluate("""() => {
      const main = document.querySelector('main');
      const crisis = main.querySelector('.crisis');
      const first = [...main.children].find((el) => !el.matches('.flashes'));
      return first === crisis && crisis.getBoundingClientRect().top < window.innerHeight / 2;
    }"""), "the crisis resources are not the first thing on the page"


def fill_infusion_form(page) -> None:
    """Fill in the infusion form's weight, dose and vitals with plausible values."""
    page.get_by_label("Weight (kg)").fill("80")
    page.get_by_label("Total dose (mg)").fill("40")
    for label, value in VITALS.items():
        page.get_by_label(label).fill(value)


def assessment_count(session, patient_id: int) -> int:
    """The patient's stored questionnaires, as the server has committed them."""
    session.rollback()  # a fresh snapshot: the server commits on its own connections
    return session.scalar(
        select(func.count()).select_from(Assessment).where(Assessment.patient_id == patient_id))
