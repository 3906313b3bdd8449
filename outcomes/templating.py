"""Template filters: times in the clinic's own zone, instrument titles, alerting flags."""
from __future__ import annotations

import datetime as dt

from flask import Flask, g
from flask_login import current_user

import instruments

from . import clock
from .services.assessments import flag_texts


def _zone() -> dt.tzinfo:
    # Once per request: a dashboard page formats a few hundred dates.
    if "template_zone" not in g:
        g.template_zone = (clock.clinic_zone(current_user.clinic)
                           if current_user and current_user.is_authenticated else clock.UTC)
    return g.template_zone


def local_date(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    return clock.to_local(value, _zone()).strftime("%-d %b %Y")


def local_datetime(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    return clock.to_local(value, _zone()).strftime("%-d %b %Y, %H:%M")


def instrument_title(key: str) -> str:
    return instruments.get(key).short_title


def install_template_helpers(app: Flask) -> None:
    app.jinja_env.add_extension("jinja2.ext.do")
    for name, function in (("local_date", local_date), ("local_datetime", local_datetime),
                           ("instrument_title", instrument_title),
                           ("instrument", instruments.get),
                           # The definition's flag rules decide which flags alert; a template
                           # never restates them.
                           ("alerting_flags", flag_texts)):
        app.add_template_filter(function, name)
