"""Fixtures for the browser tests: the app served as in production (gunicorn, production
settings, CSRF on, TLS with a certificate made for the test run), Debian's chromium driven
through Playwright, a phone-sized page, and the accessibility checks every page must pass.

The browser is never downloaded: without ``/usr/bin/chromium`` (or without the playwright
package) these tests are skipped with a visible reason, unless ``REQUIRE_BROWSER=1``, in
which case they fail so CI cannot go green without them.
"""
from __future__ import annotations

import asyncio
import base64
import contextvars
import hashlib
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from flask import Flask
from sqlalchemy.orm import Session

from outcomes import create_app
from outcomes.demo import demo_logins, seed_demo
from outcomes.extensions import db

from ..channel_servers import Mailbox
from ..conftest import PASSWORD, base_config
from ..helpers import Authenticator
from ..notification_world import email_to_mailbox

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
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
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


@dataclass(frozen=True)
class ServerCertificate:
    """A certificate for 127.0.0.1 from a CA made for this test run, and how to trust it."""

    certfile: Path
    keyfile: Path
    cafile: Path
    #: base64 SHA-256 of the certificate's public key, as Chromium's SPKI allow-list takes it.
    spki_sha256: str
    #: A client context that trusts the run's CA (and nothing else).
    ssl_context: ssl.SSLContext


@pytest.fixture(scope="session")
def tls_certificate(tmp_path_factory: pytest.TempPathFactory) -> ServerCertificate:
    """Made at test time: no key is kept in the repository, and none outlives the run."""
    authority = trustme.CA()
    issued = authority.issue_cert("127.0.0.1")
    folder = tmp_path_factory.mktemp("tls")
    certfile, keyfile, cafile = folder / "cert.pem", folder / "key.pem", folder / "ca.pem"
    issued.cert_chain_pems[0].write_to_path(str(certfile))
    issued.private_key_pem.write_to_path(str(keyfile))
    authority.cert_pem.write_to_path(str(cafile))
    public_key = x509.load_pem_x509_certificate(issued.cert_chain_pems[0].bytes()).public_key()
    spki = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    context = ssl.create_default_context()
    authority.configure_trust(context)
    return ServerCertificate(certfile, keyfile, cafile,
                           base64.b64encode(hashlib.sha256(spki).digest()).decode(), context)


@pytest.fixture(scope="package")
def browser(tls_certificate: ServerCertificate) -> Iterator[Browser]:
    """One chromium for all the browser tests; each test gets its own contexts (cookies,
    storage). Package scope, not session: while Playwright runs, its loop counts as running
    in this thread, and the rest of the suite must not run inside it.

    Chromium trusts exactly the test certificate's key (its SPKI allow-list) rather than
    ignoring certificate errors (``ignore_https_errors``): any other certificate still fails,
    and the page is the secure context a real certificate gives, where Secure cookies, HSTS
    and the Referer of a same-origin POST behave as they do in production. Playwright's own
    HTTP client (``page.request``) runs in its Node.js driver, which trusts the run's CA
    through NODE_EXTRA_CA_CERTS."""
    reason = browser_unavailable()
    if reason:
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"{reason}, and REQUIRE_BROWSER=1 forbids skipping the browser tests",
                        pytrace=False)
        pytest.skip(f"{reason}: browser tests skipped")
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("NODE_EXTRA_CA_CERTS", str(tls_certificate.cafile))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM),
                args=[*CHROMIUM_ARGS,
                      f"--ignore-certificate-errors-spki-list={tls_certificate.spki_sha256}"])
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


#: Settings the server takes from the test's own app, so that it signs audit rows with the
#: keys the test's factory signs with.
SHARED_SETTINGS = ("SECRET_KEY", "AUDIT_KEYS")
#: The server's other settings apart from its address and database: production, with the
#: lowest argon2 cost production accepts (OWASP ASVS minimum) so that sign-ins stay quick.
SERVER_ENVIRONMENT = {
    "OUTCOMES_ENV": "production",
    "ARGON2_TIME_COST": "2",
    "ARGON2_MEMORY_COST_KIB": str(19 * 1024),
    "ARGON2_PARALLELISM": "1",
}
#: gunicorn as docs/deployment.md runs it, with one worker: the sign-in limits (kept in
#: memory://) then count per server, and each test starts a server of its own.
GUNICORN_ARGS = ["--workers", "1", "--worker-class", "gthread", "--threads", "4",
                 "--timeout", "300", "--graceful-timeout", "5",
                 "--access-logfile", "-", "--error-logfile", "-",
                 # Not the shared ~/.gunicorn/gunicorn.ctl: servers of parallel runs would
                 # take it from one another.
                 "--no-control-socket"]
SERVER_START_SECONDS = 15


@pytest.fixture
def app(database_url: str) -> Iterator[Flask]:
    """The test's own app (CSRF on) on the server's database: ``session``, ``factory`` and
    ``world`` write through it what a test needs before it browses ``live_server``."""
    app = create_app({**base_config(database_url), "WTF_CSRF_ENABLED": True})
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def demo(app: Flask, session: Session) -> tuple[tuple[str, str], tuple[str, str]]:
    """The demo clinic, seeded as ``flask seed-demo`` would, with weeks of history to show
    up to the clinic's today; returns a clinician's and a patient's (email, password)."""
    with app.app_context():
        seed_demo(session, patients=12, weeks=12, seed=7)
        session.commit()
    logins = demo_logins(1)
    clinician = next(login for login in logins if login[0] == "clinician")
    patient = next(login for login in logins if login[0] == "patient")
    return clinician[1:], patient[1:]


@contextmanager
def served_app(database_url: str, tls_certificate: ServerCertificate, log_path: Path,
               host_name: str) -> Iterator[str]:
    """The app served by gunicorn over TLS with production settings and CSRF on, on a free
    port of 127.0.0.1 and the test's database, known to the browser and to itself
    (PUBLIC_BASE_URL) as ``https://<host_name>:<port>``, which it yields. Its output (access
    log, errors) goes to ``log_path``."""
    # The test process holds the listening socket and hands it over: no race for the port.
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    base_url = f"https://{host_name}:{port}"
    test_settings = base_config(database_url)
    environment = {"PATH": os.environ.get("PATH", ""), **SERVER_ENVIRONMENT,
                   **{name: test_settings[name] for name in SHARED_SETTINGS},
                   "DATABASE_URL": database_url, "PUBLIC_BASE_URL": base_url}
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", *GUNICORN_ARGS,
             "--bind", f"fd://{listener.fileno()}",
             "--certfile", str(tls_certificate.certfile),
             "--keyfile", str(tls_certificate.keyfile), "wsgi:app"],
            cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT,
            pass_fds=[listener.fileno()])
    listener.close()
    try:
        # Checked at the address the certificate names, whatever name the browser uses.
        wait_until_healthy(server, f"https://127.0.0.1:{port}", tls_certificate.ssl_context,
                           log_path)
        yield base_url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture
def live_server(database_url: str, tls_certificate: ServerCertificate, tmp_path: Path,
                request: pytest.FixtureRequest) -> Iterator[str]:
    """The app as ``served_app`` serves it, at https://127.0.0.1:<port> (its base URL, which
    it yields). The server's log is the ``server_log`` fixture, shown in the report when the
    test fails."""
    request.node.server_log = tmp_path / "server.log"
    with served_app(database_url, tls_certificate, request.node.server_log,
                    "127.0.0.1") as base_url:
        yield base_url


@pytest.fixture
def localhost_server(database_url: str, tls_certificate: ServerCertificate, tmp_path: Path,
                     request: pytest.FixtureRequest) -> Iterator[str]:
    """``live_server`` opened by a host name, https://localhost:<port>, for what takes no IP
    address (WebAuthn's relying party id). The run's certificate names 127.0.0.1; Chromium
    trusts its key whatever the name (the SPKI allow-list), so the page is still a secure
    context without certificate errors."""
    request.node.server_log = tmp_path / "server.log"
    with served_app(database_url, tls_certificate, request.node.server_log,
                    "localhost") as base_url:
        yield base_url


@pytest.fixture
def server_log(live_server: str, request: pytest.FixtureRequest) -> Path:
    """The file holding everything the test's gunicorn wrote (access log, app errors)."""
    return request.node.server_log


@pytest.fixture
def mailbox(app: Flask, live_server: str) -> Iterator[Mailbox]:
    """An SMTP server on 127.0.0.1 that the jobs' email goes to, their links to the server."""
    with email_to_mailbox(app, live_server) as box:
        yield box


def wait_until_healthy(server: subprocess.Popen, base_url: str, context: ssl.SSLContext,
                       log_path: Path) -> None:
    """Return once ``/healthz`` answers 200 over TLS; fail with the server's log otherwise."""
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(f"{base_url}/healthz", context=context,
                                        timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:  # not listening yet, or the database not ready (503)
            pass
        time.sleep(0.1)
    server.kill()
    server.wait()
    pytest.fail(f"gunicorn did not come up within {SERVER_START_SECONDS} s "
                f"(exit code {server.returncode}):\n{log_path.read_text(errors='replace')}",
                pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    report = yield
    log_path = getattr(item, "server_log", None)
    if report.failed and log_path is not None and log_path.exists():
        report.sections.append(("gunicorn log (last 100 lines)",
                                "\n".join(log_path.read_text(errors="replace")
                                          .splitlines()[-100:])))
    return report


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


#: The authenticator app of each staff account the tests signed in, by email: production asks
#: staff for its code after the password.
AUTHENTICATORS: dict[str, Authenticator] = {}
ENROLMENT_HEADING = "Set up your authenticator app"
CODE_HEADING = "Your code"


def sign_in(page: Page, base_url: str, email: str, password: str = PASSWORD) -> None:
    """Sign in through the login form, as a person would; the page must pass the checks.
    Staff then give their authenticator app's code, setting the app up at their first
    sign-in as a person does (``enrol_on_page``)."""
    goto(page, f"{base_url}/login")
    check_page(page)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    signed_in = page.get_by_role("button", name="Sign out")
    expect(signed_in.or_(page.get_by_role("heading", name=ENROLMENT_HEADING))
           .or_(page.get_by_role("heading", name=CODE_HEADING))).to_be_visible()
    if page.get_by_role("heading", name=ENROLMENT_HEADING).is_visible():
        enrol_on_page(page, email)
    elif page.get_by_role("heading", name=CODE_HEADING).is_visible():
        give_code(page, AUTHENTICATORS[email].code())
    expect(signed_in).to_be_visible()


def enrol_on_page(page: Page, email: str) -> list[str]:
    """On the enrolment page: the app takes the secret the page shows as text (as it would
    scan the QR code), its first code is typed; the recovery codes shown once are kept and
    returned, and the person continues."""
    check_page(page)
    secret = page.locator("code.secret").inner_text().replace(" ", "")
    AUTHENTICATORS[email] = Authenticator(secret)
    page.get_by_label("The 6-digit code your app shows now").fill(AUTHENTICATORS[email].code())
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    check_page(page)
    codes = page.locator(".recovery-codes code").all_inner_texts()
    page.get_by_role("link", name="I have kept them: continue").click()
    return codes


def give_code(page: Page, code: str) -> None:
    """On the code page: type ``code`` and send it."""
    check_page(page)
    page.get_by_label("Code from your authenticator app, or a recovery code").fill(code)
    page.get_by_role("button", name="Sign in").click()


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
