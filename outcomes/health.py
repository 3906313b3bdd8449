"""Liveness for load balancers: 200 when the database answers, 503 when it does not.

The database's timeouts (outcomes/database.py) bound the check: a frozen database gives a
503 within about four seconds (one ping and one connection attempt), never a hang."""
from __future__ import annotations

import logging

from flask import Blueprint, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Response

from .database import RETRY_AFTER_SECONDS, abandon_transaction
from .extensions import db

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz() -> tuple[Response, int] | tuple[Response, int, dict[str, str]]:
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        log.warning("health check: the database did not answer (%s)", type(error).__name__)
        abandon_transaction(db.session)
        return jsonify(status="unavailable"), 503, {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return jsonify(status="ok"), 200
