"""The page that shows a clinician a patient's one-time link and its QR code: an invitation
(clinician/views.py) or a password reset (resets.py). One page for both, so the two links
are built, encoded and worded alike."""
from __future__ import annotations

import datetime as dt

import segno
from flask import current_app, render_template, url_for
from markupsafe import Markup

from ..models import Patient


def one_time_link_page(patient: Patient, endpoint: str, token: str, expires_at: dt.datetime,
                       *, title: str, explanation: str = "") -> str:
    """The page showing the link to ``endpoint`` with ``token`` after ``#``, once, and its QR
    code; ``title`` names the link ("Invitation"), ``explanation`` says what it does."""
    link, qr = one_time_link(endpoint, token)
    return render_template("clinician/one_time_link.html", patient=patient, link=link,
                           qr=qr, expires_at=expires_at, title=title,
                           explanation=explanation)


def one_time_link(endpoint: str, token: str) -> tuple[str, Markup]:
    """The link to ``endpoint`` with ``token`` after ``#``, and its QR code as inline SVG
    (the staff invitation's page shows them too: clinician/staff.py)."""
    base = current_app.config["PUBLIC_BASE_URL"]
    # The token goes in the fragment, which browsers never send: it reaches no server log.
    path = url_for(endpoint)
    link = (base + path if base else url_for(endpoint, _external=True)) + "#" + token
    qr = segno.make(link, error="m")
    svg = qr.svg_inline(scale=6, dark="#000000", light="#ffffff", title="QR code of the link")
    return link, Markup(svg)
