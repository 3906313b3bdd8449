"""Real servers on 127.0.0.1 for the notification channels' tests: an SMTP server (aiosmtpd)
that keeps what it receives, and an HTTPS server that records each request and answers as a
test tells it (a push service, Twilio's API). TLS certificates come from a certificate
authority made for the test run (trustme); the tests make the clients trust it.
"""
from __future__ import annotations

import asyncio
import email
import email.policy
import http.server
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from outcomes.config import check_notification_settings, settings_from_environment

HOST = "127.0.0.1"


def settings(**environ: str) -> dict[str, object]:
    """The app's settings read from these environment variables, as the app reads them
    (development, so nothing else is required), and checked as at start."""
    config = settings_from_environment({"OUTCOMES_ENV": "development", **environ})
    check_notification_settings(config)
    return config


def free_port() -> int:
    """A port nothing listens on (the SMTP controller needs a port number before it starts,
    and a "server down" test needs one with nothing behind it)."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@dataclass
class Certificates:
    """A certificate authority for the test run and a certificate it issued for 127.0.0.1."""

    authority: trustme.CA
    ca_file: str

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.authority.issue_cert(HOST).configure_cert(context)
        return context


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    authority = trustme.CA()
    ca_file = tmp_path_factory.mktemp("authority") / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    return Certificates(authority, str(ca_file))


@pytest.fixture
def trusted(certificates: Certificates, monkeypatch: pytest.MonkeyPatch) -> Certificates:
    """The test run's authority as the only one clients trust: OpenSSL's default paths (the
    SMTP client's ssl.create_default_context) and requests' bundle (pywebpush, Twilio)."""
    monkeypatch.setenv("SSL_CERT_FILE", certificates.ca_file)
    monkeypatch.setenv("SSL_CERT_DIR", str(Path(certificates.ca_file).parent))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certificates.ca_file)
    return certificates


# --- SMTP ------------------------------------------------------------------------------------

@dataclass
class ReceivedMail:
    sender: str
    recipients: list[str]
    message: EmailMessage
    #: The name the client signed in with (None: it did not).
    login: str | None


@dataclass
class Mailbox:
    """aiosmtpd's handler: keeps each message; ``replies`` answers RCPT for an address with
    a refusal instead ("550 5.1.1 …", "451 4.3.0 …")."""

    received: list[ReceivedMail] = field(default_factory=list)
    replies: dict[str, str] = field(default_factory=dict)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.replies:
            return self.replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        login = session.auth_data.login.decode() if session.authenticated else None
        self.received.append(ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), message,
                                          login))
        return "250 Message accepted for delivery"


@dataclass
class StallingMailbox(Mailbox):
    """A ``Mailbox`` that stalls one message, as a slow server does, until the test calls
    ``release()``: ``hold(address, accepted=False)`` holds the answer to its DATA (the server
    has not taken the message yet; if the client leaves meanwhile, the message is dropped
    and its address listed in ``dropped``), ``accepted=True`` the answer
    to the QUIT after it (the server took it: it is in ``received``). ``holding`` is set
    while a message is held. Each ``hold`` stalls one message."""

    before_accepting: set[str] = field(default_factory=set)
    after_accepting: set[str] = field(default_factory=set)
    dropped: list[str] = field(default_factory=list)
    holding: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    #: The SMTP sessions whose QUIT is held.
    quitting_late: list[object] = field(default_factory=list)

    def hold(self, address: str, *, accepted: bool) -> None:
        self.holding.clear()
        self.released.clear()
        (self.after_accepting if accepted else self.before_accepting).add(address)

    def release(self) -> None:
        self.released.set()

    async def stall(self) -> None:
        self.holding.set()
        while not self.released.is_set():
            await asyncio.sleep(0.02)

    async def handle_DATA(self, server, session, envelope):
        held = self.before_accepting.intersection(envelope.rcpt_tos)
        if held:
            self.before_accepting -= held
            try:
                await self.stall()
            except asyncio.CancelledError:  # aiosmtpd cancels a session whose client left
                self.dropped.extend(held)
                raise
        status = await super().handle_DATA(server, session, envelope)
        late = self.after_accepting.intersection(envelope.rcpt_tos)
        if late:
            self.after_accepting -= late
            self.quitting_late.append(session)
        return status

    async def handle_QUIT(self, server, session, envelope):
        if session in self.quitting_late:
            self.quitting_late.remove(session)
            await self.stall()
        return "221 Bye"


def password_check(username: str, password: str):
    """An aiosmtpd authenticator accepting one username and password."""
    def authenticate(server, session, envelope, mechanism, auth_data):
        good = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == username
                and auth_data.password.decode() == password)
        return AuthResult(success=good, handled=False, auth_data=auth_data if good else None)
    return authenticate


@contextmanager
def smtp_server(mailbox: Mailbox, **options) -> Iterator[int]:
    """An SMTP server on 127.0.0.1 delivering into ``mailbox``, its port yielded; ``options``
    go to aiosmtpd's Controller (``ssl_context`` for implicit TLS; ``tls_context`` and
    ``require_starttls`` for STARTTLS; ``authenticator``)."""
    port = free_port()
    controller = Controller(mailbox, hostname=HOST, port=port, server_hostname="localhost",
                            **options)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@contextmanager
def silent_server() -> Iterator[int]:
    """A port that takes connections (the kernel completes them) but never says a word, as a
    hung server does: a client waits for its greeting until its timeout."""
    with socket.socket() as listener:
        listener.bind((HOST, 0))
        listener.listen(8)
        yield listener.getsockname()[1]


# --- HTTPS -----------------------------------------------------------------------------------

@dataclass
class Request:
    method: str
    path: str
    #: By lower-case name (clients spell them as they like).
    headers: dict[str, str]
    body: bytes


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class RecordingServer:
    """What an HTTPS server received, and how it answers: ``answers`` in turn, then
    ``default``."""

    url: str
    default: Answer
    requests: list[Request] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)

    def answer(self, request: Request) -> Answer:
        self.requests.append(request)
        return self.answers.pop(0) if self.answers else self.default


@contextmanager
def https_server(certificates: Certificates, default: Answer) -> Iterator[RecordingServer]:
    """An HTTPS server on 127.0.0.1, in a thread, that records every request."""
    recorder: RecordingServer

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            answer = recorder.answer(Request("POST", self.path,
                                             {k.lower(): v for k, v in self.headers.items()},
                                             self.rfile.read(length)))
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # the test reads the records, not stderr

    server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
    server.socket = certificates.server_context().wrap_socket(server.socket, server_side=True)
    recorder = RecordingServer(f"https://{HOST}:{server.server_port}", default)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
