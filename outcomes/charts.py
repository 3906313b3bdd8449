"""Plotly figures from plain data. No Flask here: views pass series in, templates get JSON out.

The same meaning has the same colour on every chart.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import plotly.graph_objects as go

import instruments

#: One colour per measure, and one for each recurring meaning. Chosen for at least 3:1
#: contrast against white as graphical objects (WCAG 2.2 1.4.11).
MEASURE_COLOURS = {"PCL-5": "#1f5fa8", "PHQ-9": "#8a3b12", "GAD-7": "#2e6b30"}
OTHER_COLOUR = "#4a4a4a"
CUTPOINT_COLOUR = "#6b6b6b"
ALERT_COLOUR = "#b00020"
BAND_SHADES = ("#f2f7f2", "#f7f7ea", "#fbf1e6", "#fbe9e6", "#f6e1e1")


@dataclass(frozen=True)
class Point:
    administered_at: dt.datetime
    total: int
    assessment_id: int
    flagged: bool = False


@dataclass
class Series:
    """One measure over time. Versions of a questionnaire that share items and scoring (PCL-5
    past month and past week) share a measure and form one series."""

    measure: str
    title: str
    total_max: int
    cutpoint: int | None
    bands: tuple[instruments.Band, ...]
    points: list[Point] = field(default_factory=list)


def trend_figure(series: Series, *, simple: bool = False) -> dict[str, Any]:
    """A line of a measure's totals over time, with its cut-point and bands when it has them.

    ``simple`` drops the cut-point and band labels for the patient's own view.
    """
    colour = MEASURE_COLOURS.get(series.measure, OTHER_COLOUR)
    dates = [point.administered_at for point in series.points]
    totals = [point.total for point in series.points]
    figure = go.Figure()
    figure.add_trace(go.Scatter(
        x=dates, y=totals, mode="lines+markers", name=series.measure,
        line={"color": colour, "width": 3}, marker={"size": 9, "color": colour},
        hovertemplate="%{x|%d %b %Y}: %{y}<extra></extra>",
    ))
    flagged = [point for point in series.points if point.flagged]
    if flagged and not simple:
        figure.add_trace(go.Scatter(
            x=[point.administered_at for point in flagged], y=[point.total for point in flagged],
            mode="markers", name="Safety alert",
            marker={"symbol": "diamond-open", "size": 16, "color": ALERT_COLOUR,
                    "line": {"width": 3}},
            hovertemplate="%{x|%d %b %Y}: safety alert<extra></extra>",
        ))
    if not simple:
        for index, band in enumerate(series.bands):
            figure.add_hrect(
                y0=band.min - 0.5 if band.min else 0, y1=min(band.max + 0.5, series.total_max),
                fillcolor=BAND_SHADES[index % len(BAND_SHADES)], line_width=0, layer="below",
                annotation_text=band.label, annotation_position="top left",
                annotation_font={"size": 11, "color": "#333333"},
            )
        if series.cutpoint is not None:
            figure.add_hline(
                y=series.cutpoint, line_dash="dash", line_color=CUTPOINT_COLOUR,
                annotation_text=f"cut-point {series.cutpoint}",
                annotation_position="bottom right", annotation_font={"color": "#333333"},
            )
    figure.update_layout(
        title={"text": series.measure, "font": {"size": 16}},
        margin={"l": 40, "r": 12, "t": 40, "b": 40},
        height=280,
        showlegend=bool(flagged) and not simple,
        legend={"orientation": "h", "y": -0.25},
        plot_bgcolor="#ffffff",
        paper_bgcolor="#ffffff",
        yaxis={"range": [0, series.total_max], "title": {"text": "Total"}, "fixedrange": True,
               "gridcolor": "#e0e0e0"},
        xaxis={"type": "date", "gridcolor": "#e0e0e0"},
        font={"family": "system-ui, sans-serif", "color": "#1a1a1a"},
    )
    return json.loads(figure.to_json())
