"""Fixtures for the browser tests: the app served on a real socket, Debian's chromium driven
through Playwright, a phone-sized page, and the accessibility checks every page must pass.

The browser is never downloaded: without ``/usr/bin/chromium`` (or without the playwright
package) these tests are skipped with a visible reason, unless ``REQUIRE_BROWSER=1``, in
which case they fail so CI cannot go green without them.
"""
from __future__ import annotations

import asyncio
import contextvars
import os
import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from outcomes import create_app
from outcomes.extensions import db

from ..conftest import PASSWORD, base_config

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {"viewport": {"width": 360, "height": 740}, "is_mobile": True, "has_touch": True,
         "device_scale_factor": 2}
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
#: Fail fast: a page of this app that takes longer than this is itself a finding.
TIMEOUT_MS = 10_000

try:
    from playwright.sync_api import (
        Browser,
        BrowserContext,
        ConsoleMessage,
        Page,
        Response,
        expect,
        sync_playwright,
    )
except ImportError as error:  # pragma: no cover - depends on the machine
    # The test modules import ``expect`` from here, so collection still works and the
    # ``browser`` fixture can skip (or fail) with the reason.
    PLAYWRIGHT_MISSING: str | None = f"playwright cannot be imported ({error})"
    expect = None
else:
    PLAYWRIGHT_MISSING = None


def browser_unavailable() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if not CHROMIUM.exists():
        return "chromium not installed"
    return PLAYWRIGHT_MISSING


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """One chromium for all the browser tests; each test gets its own contexts (cookies,
    storage). Package scope, not session: while Playwright runs, its loop counts as running
    in this thread, and the rest of the suite must not run inside it."""
    reason = browser_unavailable()
    if reason:
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"{reason}, and REQUIRE_BROWSER=1 forbids skipping the browser tests",
                        pytrace=False)
        pytest.skip(f"{reason}: browser tests skipped")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _run_in_own_loop(self: Flask, func: Callable[..., Coroutine]) -> Callable[..., object]:
    def run(*args: object, **kwargs: object) -> object:
        # In the app's context (``g`` lives in a context variable), on a thread with no loop.
        context = contextvars.copy_context()
        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(context.run, asyncio.run, func(*args, **kwargs)).result()

    return run


@pytest.fixture(autouse=True)
def flask_async_outside_playwright_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let app contexts close in the test's thread while Playwright is running.

    Playwright's sync API leaves its asyncio loop marked as running in the main thread, and
    Flask-SQLAlchemy-Lite registers an ``async`` teardown that Flask runs through asgiref,
    which refuses to start inside a running loop. Every ``with app.app_context()`` of the
    fixtures (create_app, factory, session) would then fail. The coroutine is run to
    completion as before, only on a thread of its own.
    """
    monkeypatch.setattr(Flask, "async_to_sync", _run_in_own_loop)


@pytest.fixture
def app(database_url: str) -> Iterator[Flask]:
    """The app with CSRF protection on, as in production: a real browser posts real forms.

    Overrides the suite's ``app`` so ``session``, ``factory`` and ``world`` share its database.
    """
    app = create_app({**base_config(database_url), "WTF_CSRF_ENABLED": True})
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    """The app served on a free port of 127.0.0.1; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


#: Script errors, CSP refusals and missing static files seen in each open context.
PAGE_ERRORS: dict[int, list[str]] = {}


def watch_for_page_errors(context: BrowserContext) -> None:
    """Collect what a person does not see but that breaks the page: uncaught script errors,
    console errors (CSP refusals land there) and static files that fail to load."""
    errors = PAGE_ERRORS.setdefault(id(context), [])

    def on_console(message: ConsoleMessage) -> None:
        # A page's own 4xx is logged this way too; the tests check statuses themselves.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(f"console: {message.text}")

    def on_response(response: Response) -> None:
        if "/static/" in response.url and response.status >= 400:
            errors.append(f"{response.status} {response.url}")

    context.on("weberror", lambda error: errors.append(f"script error: {error.error}"))
    context.on("console", on_console)
    context.on("response", on_response)


@pytest.fixture
def new_context(browser: Browser) -> Iterator[Callable[..., BrowserContext]]:
    """Opens browser contexts (``phone`` by default, or ``desktop=True``), closed after the
    test. A fresh context is a different person's device: no shared cookies."""
    opened: list[BrowserContext] = []

    def open_context(desktop: bool = False) -> BrowserContext:
        context = browser.new_context(**(DESKTOP if desktop else PHONE))
        context.set_default_timeout(TIMEOUT_MS)
        watch_for_page_errors(context)
        opened.append(context)
        return context

    yield open_context
    for context in opened:
        PAGE_ERRORS.pop(id(context), None)
        context.close()


@pytest.fixture
def phone(new_context: Callable[..., BrowserContext]) -> Page:
    """A page in a fresh 360×740 touch-screen context."""
    return new_context().new_page()


@pytest.fixture
def screenshot(database_url: str) -> Callable[[Page, str], None]:
    """Saves a full-page PNG for the README when SCREENSHOTS=1, on the SQLite run only (one
    set, not two), so an ordinary test run leaves the working tree as it was."""

    def save(page: Page, name: str) -> None:
        if not database_url.startswith("sqlite") or os.environ.get("SCREENSHOTS") != "1":
            return
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        # Plotly draws after the page loads; a focus ring would show in the picture.
        page.wait_for_load_state("networkidle")
        page.evaluate("document.activeElement && document.activeElement.blur()")
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True,
                        animations="disabled")

    return save


def goto(page: Page, url: str, status: int = 200) -> Response:
    """Open ``url`` and check the answer's HTTP status."""
    response = page.goto(url)
    assert response is not None
    assert response.status == status, f"{url}: {response.status}"
    return response


def sign_in(page: Page, base_url: str, email: str, password: str = PASSWORD) -> None:
    """Sign in through the login form, as a person would; the page must pass the checks."""
    goto(page, f"{base_url}/login")
    check_page(page)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


MIN_TAP_TARGET_PX = 44

# One round trip measures the page: its width, fields without a label, each radio's label
# height (getBoundingClientRect, which is what Playwright's boundingBox reads), and every
# control that something else covers at its centre, so a tap would not reach it.
_MEASURE_PAGE = """() => {
  const describe = (el) => el.id || el.name || el.outerHTML.slice(0, 80);
  const fields = [...document.querySelectorAll('input, select, textarea')]
    .filter((el) => el.type !== 'hidden');
  const controls = [...document.querySelectorAll(
    'a[href], button, input:not([type=hidden]), select, textarea, summary')]
    .filter((el) => el.getClientRects().length > 0);
  const covered = [];
  for (const el of controls) {
    el.scrollIntoView({block: 'center', inline: 'center'});
    const box = el.getClientRects()[0];  // a link that wraps: its first line, not the gap
    if (box.right <= 0 || box.bottom <= 0) continue;  // off-screen on purpose: the skip link
    const hit = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
    const labels = [...(el.labels || [])];
    if (!hit || el.contains(hit) || labels.some((label) => label.contains(hit))) continue;
    covered.push({control: describe(el), by: hit.outerHTML.slice(0, 60)});
  }
  window.scrollTo(0, 0);
  return {
    lang: document.documentElement.lang,
    title: document.title.trim(),
    scrollWidth: document.documentElement.scrollWidth,
    unlabelled: fields.filter((el) => el.labels.length === 0).map(describe),
    radios: fields.filter((el) => el.type === 'radio').map((el) => ({
      id: describe(el),
      height: Math.min(...[...el.labels].map((label) => label.getBoundingClientRect().height)),
    })),
    covered: covered,
  };
}"""


def page_problems(page: Page) -> list[str]:
    """What is wrong with the page as it stands, in words; empty when nothing is."""
    errors = PAGE_ERRORS.get(id(page.context), [])
    measured = page.evaluate(_MEASURE_PAGE)
    covered = measured["covered"]
    width = page.viewport_size["width"]
    problems = list(errors)
    if not measured["lang"] or not measured["title"]:
        problems.append("the page needs a language and a title")
    if measured["scrollWidth"] > width:
        problems.append(f"scrolls sideways: {measured['scrollWidth']} px wide at {width} px")
    if measured["unlabelled"]:
        problems.append(f"fields without a label: {measured['unlabelled']}")
    small = [radio for radio in measured["radios"] if radio["height"] < MIN_TAP_TARGET_PX]
    if small:
        problems.append(f"radio tap targets under {MIN_TAP_TARGET_PX} px: {small[:5]}")
    if covered:
        problems.append(f"controls covered by something else: {covered[:5]}")
    return problems


def check_page(page: Page, keyboard: bool = False) -> None:
    """The checks every page passes, at whatever viewport it is shown.

    No script errors, CSP refusals or missing static files; no horizontal scrolling; every
    visible form field has a label; every radio's label (its tap target) is at least 44 px
    tall; no control is covered where a tap would land. With ``keyboard`` (a questionnaire
    page, before anything is answered): Tab reaches the first radio and Space selects it.
    """
    # A click that navigates returns once the new page commits; measure it once styled.
    page.wait_for_load_state()
    problems = page_problems(page)
    assert not problems, f"{page.url}: {problems}"
    if keyboard:
        check_keyboard_reaches_first_radio(page)


def check_keyboard_reaches_first_radio(page: Page) -> None:
    """From the top of the page, Tab reaches the first radio and Space selects it."""
    first = page.locator("input[type=radio]").first
    expect(first).not_to_be_checked()
    # Start where a keyboard user starts: nothing focused, at the top of the document.
    page.evaluate("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
    for _ in range(30):  # the skip link, the header's links and buttons come first
        page.keyboard.press("Tab")
        if first.evaluate("el => el === document.activeElement"):
            break
    else:
        pytest.fail(f"{page.url}: Tab never reached the first radio button")
    page.keyboard.press("Space")
    expect(first).to_be_checked()
