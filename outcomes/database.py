"""How long the app waits for its database, so that an outage answers within seconds.

PostgreSQL gets three limits (docs/outages.md):

- ``connect_timeout``: opening a connection to a server that does not answer gives up.
- ``statement_timeout``: the server cancels a statement that runs too long (a lock held
  elsewhere, a runaway query); the connection stays usable.
- A client-side deadline on every call. A frozen server, or a network that drops packets,
  answers nothing at all, so no server-side limit can fire, and psycopg would wait for ever.
  The watchdog shuts such a connection's socket down; the driver then raises the error of a
  lost connection and SQLAlchemy discards the connection. Connections taken from the pool
  are pinged under a short deadline first, so a frozen server costs a request one ping and
  one connection attempt, not a statement timeout.

SQLite waits for another writer's lock up to its ``busy_timeout`` (set where its connections
are configured) and then fails the same way.
"""
from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Engine, event, exc, make_url
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.orm import Session

#: How long a pooled connection's ping may take before the connection counts as lost. A
#: healthy server answers in milliseconds; a frozen one would hold every request.
PING_DEADLINE = 1.0
#: The client-side deadline is the statement timeout plus this: the server's cancellation
#: (which keeps the connection) must win whenever the server is there to send it.
DEADLINE_GRACE = 2.0
#: The execution option carrying a connection's statement timeout in seconds (None: none).
STATEMENT_TIMEOUT_OPTION = "outcomes_statement_timeout"

#: Seconds a browser or load balancer is asked to wait when the database is unavailable (the
#: page says "in a minute").
RETRY_AFTER_SECONDS = 60
#: The errors that mean "the database is unavailable just now": connections lost or refused,
#: timeouts (connect, statement, pool), locks not granted, serialization failures. Trying
#: again later can succeed; the request changed nothing.
UNAVAILABLE = (exc.OperationalError, exc.InterfaceError, exc.TimeoutError)


def engine_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """The SQLAlchemy engine options for ``config``: timeouts, and no values in messages."""
    options: dict[str, Any] = {
        "url": config["DATABASE_URL"],
        # Error messages and logs must never carry the values of a health record.
        "hide_parameters": True,
    }
    url = make_url(config["DATABASE_URL"])
    if url.get_backend_name() != "postgresql":
        options["pool_pre_ping"] = True
        return options
    # PostgreSQL pings under a deadline of its own (install_deadlines) instead of pre_ping,
    # which would wait for a frozen server without limit.
    milliseconds = int(config["DATABASE_STATEMENT_TIMEOUT"] * 1000)
    # Keep any options the URL gives (a search_path, say): connect_args would replace them.
    given = url.query.get("options")
    options["connect_args"] = {
        "connect_timeout": config["DATABASE_CONNECT_TIMEOUT"],
        "options": " ".join(filter(None, [given if isinstance(given, str) else None,
                                           f"-c statement_timeout={milliseconds}"])),
    }
    options["pool_timeout"] = config["DATABASE_POOL_TIMEOUT"]
    options["pool_size"] = config["DATABASE_POOL_SIZE"]
    options["execution_options"] = {
        STATEMENT_TIMEOUT_OPTION: config["DATABASE_STATEMENT_TIMEOUT"]}
    return options


def install_deadlines(engine: Engine) -> None:
    """Give every call to a PostgreSQL ``engine`` a client-side deadline (see the module's
    docstring): pings on checkout, statements, commits and rollbacks."""
    watchdog = Watchdog()

    def deadline(options: Mapping[str, Any]) -> float | None:
        timeout = options.get(STATEMENT_TIMEOUT_OPTION)
        return None if timeout is None else timeout + DEADLINE_GRACE

    @event.listens_for(engine, "connect")
    def mark_fresh(dbapi_connection: Any, record: Any) -> None:
        record.info["fresh"] = True

    @event.listens_for(engine, "checkout")
    def ping(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        # A connection made for this checkout has just answered: like SQLAlchemy's own
        # pre-ping, only a pooled one is pinged (a burst of new connections on a busy server
        # would otherwise be pinged, and flushed, for being slow to start).
        if record.info.pop("fresh", False):
            return
        try:
            with watchdog.watching(dbapi_connection, PING_DEADLINE):
                engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            # The server restarted, went away or froze: every pooled connection is suspect.
            raise exc.InvalidatePoolError() from error

    @event.listens_for(engine, "before_cursor_execute")
    def before_statement(connection: Connection, cursor: Any, statement: str,
                         parameters: Any, context: Any, executemany: bool) -> None:
        options = context.execution_options if context else connection.get_execution_options()
        seconds = deadline(options)
        if seconds is not None:
            watchdog.arm(cursor.connection, seconds)

    @event.listens_for(engine, "after_cursor_execute")
    def after_statement(connection: Connection, cursor: Any, *args: Any) -> None:
        watchdog.disarm(cursor.connection)

    @event.listens_for(engine, "handle_error")
    def after_failure(context: ExceptionContext) -> None:
        cursor = getattr(context.execution_context, "cursor", None)
        if cursor is not None:
            watchdog.disarm(cursor.connection)

    # A commit or rollback has no "after" event: the deadline stays armed until the next
    # statement re-arms it or the connection goes back to the pool (the ORM session gives
    # its connection back as soon as it commits or rolls back).
    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def before_transaction_end(connection: Connection) -> None:
        seconds = deadline(connection.get_execution_options())
        if seconds is not None and not (connection.closed or connection.invalidated):
            watchdog.arm(connection.connection.dbapi_connection, seconds)

    @event.listens_for(engine, "checkin")
    def returned(dbapi_connection: Any, record: Any) -> None:
        if dbapi_connection is not None:
            watchdog.disarm(dbapi_connection)


def set_statement_timeout(connection: Connection, seconds: int | None) -> None:
    """Let the current transaction of ``connection`` run statements for up to ``seconds``
    (None: without limit), for work that is long by nature: an export, a migration."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SELECT set_config('statement_timeout', %(ms)s, true)",
                                   {"ms": str(int(seconds * 1000) if seconds else 0)})
    connection.execution_options(**{STATEMENT_TIMEOUT_OPTION: seconds})


def abandon_transaction(session: Session) -> None:
    """End ``session``'s transaction after a failure, even with the database gone.

    Rolling back over a lost connection can raise in turn; the page explaining the failure
    must be shown all the same, and the session must be usable by the next request."""
    try:
        session.rollback()
    except exc.SQLAlchemyError:
        session.close()


class Watchdog:
    """Shuts down the socket of any database call still waiting at its deadline.

    The socket is shut down through a duplicate of the connection's file descriptor, taken
    when the call starts: a descriptor number reused after the connection closed is never
    touched."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._armed: dict[int, tuple[float, socket.socket]] = {}
        self._thread: threading.Thread | None = None
        #: When the watching thread wakes next (None: when woken). A deadline after that
        #: needs no wake-up, which spares a thread switch on almost every statement.
        self._wakes_at: float | None = None

    def arm(self, dbapi_connection: Any, seconds: float) -> None:
        """Start (or restart) the deadline of ``dbapi_connection``'s current call."""
        if dbapi_connection.closed:
            return
        duplicate = socket.socket(fileno=os.dup(dbapi_connection.fileno()))
        deadline = time.monotonic() + seconds
        with self._changed:
            self._release(id(dbapi_connection))
            self._armed[id(dbapi_connection)] = (deadline, duplicate)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._watch, daemon=True,
                                                name="database-deadlines")
                self._thread.start()
            elif self._wakes_at is None or deadline < self._wakes_at:
                self._changed.notify()

    def disarm(self, dbapi_connection: Any) -> None:
        """The call answered (or failed by itself): forget its deadline."""
        with self._changed:
            self._release(id(dbapi_connection))

    @contextlib.contextmanager
    def watching(self, dbapi_connection: Any, seconds: float) -> Any:
        """Arm for the length of the ``with`` block."""
        self.arm(dbapi_connection, seconds)
        try:
            yield
        finally:
            self.disarm(dbapi_connection)

    def _release(self, key: int) -> None:
        entry = self._armed.pop(key, None)
        if entry is not None:
            entry[1].close()

    def _watch(self) -> None:
        with self._changed:
            while True:
                now = time.monotonic()
                for key, (deadline, duplicate) in list(self._armed.items()):
                    if deadline <= now:
                        with contextlib.suppress(OSError):
                            duplicate.shutdown(socket.SHUT_RDWR)
                        self._release(key)
                self._wakes_at = min((deadline for deadline, _ in self._armed.values()),
                                     default=None)
                self._changed.wait(None if self._wakes_at is None else self._wakes_at - now)
