"""Plotly figures from plain data. No Flask here: views pass series in, templates get a figure
(as JSON) and the same figures as tables out.

A measure's colour and its place among the charts come from its definition's ``[display]``
(``instruments.measures``); every other colour comes from ``PALETTE``, so one meaning has one
colour on every chart. Times are
drawn as wall-clock times in the clinic's zone, because plotly.js ignores a time's UTC offset.
Only scatter traces, shapes, annotations and range-selector buttons are used: that is what the
basic plotly.js bundle the app ships can draw.
"""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

import plotly.graph_objects as go

import instruments

from .clock import to_local

#: One colour per meaning, on every chart. Lines and markers have at least 3:1 contrast
#: against white (WCAG 2.2 1.4.11); band shades are pale enough for #333 text (AA, 9:1+).
PALETTE: Mapping[str, str] = MappingProxyType({
    # a measure whose definition declares no colour
    "other": "#4a4a4a",
    # the parts of a measure (the PCL-5 DSM-5 clusters), in the definition's order
    "part 1": "#00737a",
    "part 2": "#a2306b",
    "part 3": "#7a5a00",
    "part 4": "#b34700",
    # marks
    "infusion": "#6a3d9a",
    "cutpoint": "#595959",
    "alert": "#b00020",
    # severity bands, by the band keys of the definitions
    "band minimal": "#e9f4ea",
    "band mild": "#f4f4e0",
    "band moderate": "#fcefdc",
    "band moderately_severe": "#fbe3dd",
    "band severe": "#f6d9d9",
    "band other": "#eeeeee",
    # text and frame
    "text": "#1a1a1a",
    "label": "#333333",
    "grid": "#e0e0e0",
    "button": "#eeeeee",
    "button active": "#cfdcec",
})

#: How many part colours ``PALETTE`` has.
PART_COLOURS = 4
#: Line styles that tell the parts of a measure apart without colour.
PART_DASHES = ("solid", "dash", "dot", "dashdot")
PART_SYMBOLS = ("circle", "square", "diamond", "triangle-up")

#: The clinician's time-range buttons; "backward" counts from the latest date on the chart.
RANGE_BUTTONS = (
    {"count": 1, "label": "1 month", "step": "month", "stepmode": "backward"},
    {"count": 3, "label": "3 months", "step": "month", "stepmode": "backward"},
    {"label": "All", "step": "all"},
)
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"


@dataclass(frozen=True)
class Point:
    """One scored questionnaire on a measure's line."""

    administered_at: dt.datetime
    total: int
    assessment_id: int
    #: Safety flags the answers raised, as short texts (e.g. "suicide risk: positive").
    alerts: tuple[str, ...] = ()
    #: Part scores, e.g. the PCL-5 cluster totals, by part key.
    subscales: Mapping[str, int] = field(default_factory=dict)

    @property
    def flagged(self) -> bool:
        return bool(self.alerts)


class Reference(Protocol):
    """The point a measure's change is read from (``services.baseline.Reference``)."""

    record: Point
    #: "baseline" or "since first": the words the chart uses for it.
    kind: str


@dataclass(frozen=True)
class Part:
    """A part of a measure charted on its own, e.g. a PCL-5 DSM-5 cluster."""

    key: str
    label: str
    max: int


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
    parts: tuple[Part, ...] = ()
    #: The point change is read from, for the latest point: marked on the clinician's chart.
    reference: Reference | None = None


@dataclass(frozen=True)
class Vitals:
    """Blood pressure (mmHg), heart rate (beats/min) and SpO2 (%) at one moment; any may be
    missing (peak values are optional)."""

    systolic: int | None
    diastolic: int | None
    heart_rate: int | None
    spo2: int | None


@dataclass(frozen=True)
class InfusionMark:
    """An infusion as the charts mark it: a vertical line, with what was given on hover."""

    label: str
    administered_at: dt.datetime
    dose_mg_per_kg: float
    total_dose_mg: float
    before: Vitals
    peak: Vitals
    after: Vitals
    #: Side effects observed, as labels.
    side_effects: tuple[str, ...] = ()


class WeeklyMean(Protocol):
    """A mean by week since the first infusion (``services.outcomes.WeekMean``)."""

    week: int
    n: int
    mean: float
    low: float | None
    high: float | None


@dataclass(frozen=True)
class Column:
    """A table column; numbers are right-aligned."""

    label: str
    numeric: bool = False


@dataclass(frozen=True)
class Table:
    """What a chart shows, as a table for people who cannot see the chart."""

    caption: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Chart:
    """A figure ready for the ``charts`` macro: a heading, an optional sentence, the figure
    and its tables."""

    title: str
    description: str
    figure: dict[str, Any]
    tables: tuple[Table, ...]
    summary: str = ""


def colour_of(measure: str) -> str:
    """A measure's colour, as its definition declares it; measures without one share one."""
    return next((m.colour for m in instruments.measures() if m.name == measure),
                PALETTE["other"])


def part_colour(index: int) -> str:
    """The colour of a measure's part by its place (0 first); more parts than colours reuse
    them, told apart by dash and marker."""
    return PALETTE[f"part {index % PART_COLOURS + 1}"]


def band_colour(band_key: str) -> str:
    """The shade of a severity band: the same key is the same shade on every chart."""
    return PALETTE.get(f"band {band_key}", PALETTE["band other"])


# --- figures ------------------------------------------------------------------------------

def total_figure(series: Series, infusions: Sequence[InfusionMark], zone: dt.tzinfo, *,
                 simple: bool = False) -> dict[str, Any]:
    """A measure's totals over time, with a vertical mark at each infusion.

    For clinicians (``simple=False``): the severity bands shaded and labelled when the
    definition has bands, the cut-point line labelled when it has one, safety flags marked,
    full infusion details on hover, and time-range buttons. The patient's own view
    (``simple=True``) keeps the line and the infusions and leaves the rest out.
    """
    colour = colour_of(series.measure)
    figure = go.Figure()
    if not simple:
        _add_bands(figure, series)
        _add_cutpoint(figure, series)
    figure.add_trace(go.Scatter(
        x=[_local(p.administered_at, zone) for p in series.points],
        y=[p.total for p in series.points],
        mode="lines+markers", name="Your score" if simple else f"{series.measure} total",
        line={"color": colour, "width": 3}, marker={"size": 9, "color": colour},
        hovertemplate="%{x|%-d %b %Y}: %{y}<extra></extra>",
    ))
    if series.reference is not None and not simple:
        start = series.reference.record
        figure.add_trace(go.Scatter(
            x=[_local(start.administered_at, zone)], y=[start.total], mode="markers",
            name=series.reference.kind.capitalize(),
            marker={"symbol": "circle-open", "size": 19, "color": colour,
                    "line": {"width": 3, "color": colour}},
            hovertemplate=f"{series.reference.kind.capitalize()}: %{{x|%-d %b %Y}}, %{{y}}"
                          "<extra></extra>",
        ))
    flagged = [p for p in series.points if p.flagged]
    if flagged and not simple:
        figure.add_trace(go.Scatter(
            x=[_local(p.administered_at, zone) for p in flagged],
            y=[p.total for p in flagged], mode="markers", name="Safety flag",
            marker={"symbol": "diamond-open", "size": 17, "color": PALETTE["alert"],
                    "line": {"width": 3, "color": PALETTE["alert"]}},
            hovertext=[f"{_day(p.administered_at, zone)}: {'; '.join(p.alerts)}"
                       for p in flagged],
            hovertemplate="%{hovertext}<extra></extra>",
        ))
    _add_infusions(figure, infusions, zone, top=series.total_max, detailed=not simple)
    figure.update_layout(_layout(y_max=series.total_max, y_title="Score" if simple else "Total",
                                 range_buttons=not simple))
    return _plain(figure)


def parts_figure(series: Series, infusions: Sequence[InfusionMark],
                 zone: dt.tzinfo) -> dict[str, Any]:
    """Each part of a measure over time (the PCL-5 clusters B, C, D and E), one line per part
    told apart by colour, dash and marker, with the infusions and time-range buttons."""
    figure = go.Figure()
    top = max((part.max for part in series.parts), default=series.total_max)
    for index, part in enumerate(series.parts):
        scored = [p for p in series.points if part.key in p.subscales]
        colour = part_colour(index)
        figure.add_trace(go.Scatter(
            x=[_local(p.administered_at, zone) for p in scored],
            y=[p.subscales[part.key] for p in scored], mode="lines+markers",
            name=f"{part.key} {part.label}",
            line={"color": colour, "width": 2.5, "dash": PART_DASHES[index % len(PART_DASHES)]},
            marker={"size": 7, "color": colour,
                    "symbol": PART_SYMBOLS[index % len(PART_SYMBOLS)]},
            hovertemplate=f"{part.key} ({part.label}) %{{x|%-d %b %Y}}: %{{y}} of {part.max}"
                          "<extra></extra>",
        ))
    _add_infusions(figure, infusions, zone, top=top, detailed=True)
    layout = _layout(y_max=top, y_title="Cluster total", range_buttons=True)
    layout["height"] = 340
    figure.update_layout(layout)
    return _plain(figure)


def weekly_mean_figure(measure: str, total_max: int,
                       weeks: Sequence[WeeklyMean]) -> dict[str, Any]:
    """Mean total by week since the first infusion, with the 95 % confidence interval as an
    error bar where there is one (weeks with n < 2 have none) and n on hover."""
    colour = colour_of(measure)
    hover = [f"Week {w.week}: mean {w.mean:.1f}"
             + (f" (95% CI {w.low:.1f} to {w.high:.1f})" if w.low is not None else "")
             + f", n = {w.n}" for w in weeks]
    figure = go.Figure(go.Scatter(
        x=[w.week for w in weeks], y=[round(w.mean, 2) for w in weeks],
        mode="lines+markers", name=f"Mean {measure}",
        line={"color": colour, "width": 3}, marker={"size": 8, "color": colour},
        error_y={"type": "data", "symmetric": True, "color": colour, "thickness": 1.5,
                 "width": 4,
                 "array": [round(w.high - w.mean, 2) if w.high is not None else None
                           for w in weeks]},
        hovertext=hover, hovertemplate="%{hovertext}<extra></extra>",
    ))
    layout = _layout(y_max=total_max, y_title=f"Mean {measure}", range_buttons=False)
    last_week = max((w.week for w in weeks), default=1)
    layout["xaxis"] = {"title": {"text": "Week (0 = baseline)"},
                       "range": [-0.5, last_week + 0.5], "dtick": 4 if last_week > 12 else 1,
                       "gridcolor": PALETTE["grid"], "zeroline": False, "fixedrange": True}
    layout["showlegend"] = False
    figure.update_layout(layout)
    return _plain(figure)


def _add_bands(figure: go.Figure, series: Series) -> None:
    for band in series.bands:
        figure.add_hrect(
            y0=band.min - 0.5 if band.min else 0, y1=min(band.max + 0.5, series.total_max),
            fillcolor=band_colour(band.key), opacity=1, line_width=0, layer="below",
            annotation_text=band.label, annotation_position="top left",
            annotation_font={"size": 10, "color": PALETTE["label"]},
            # The label may sit over a point: a veil keeps it legible without hiding the point.
            annotation_bgcolor="rgba(255,255,255,0.6)", annotation_borderpad=1,
        )


def _add_cutpoint(figure: go.Figure, series: Series) -> None:
    if series.cutpoint is None:
        return
    figure.add_hline(
        y=series.cutpoint, line_dash="dash", line_width=2, line_color=PALETTE["cutpoint"],
        annotation_text=f"cut-point {series.cutpoint}", annotation_position="top right",
        annotation_font={"size": 11, "color": PALETTE["label"]},
    )


def _add_infusions(figure: go.Figure, infusions: Sequence[InfusionMark], zone: dt.tzinfo, *,
                   top: int, detailed: bool) -> None:
    """A dotted vertical line at each infusion, and a marker at its top that carries the
    hover text (shapes have no hover of their own)."""
    if not infusions:
        return
    colour = PALETTE["infusion"]
    for mark in infusions:
        figure.add_vline(x=_local(mark.administered_at, zone), line_dash="dot", line_width=1.5,
                         line_color=colour, layer="below")
    figure.add_trace(go.Scatter(
        x=[_local(mark.administered_at, zone) for mark in infusions],
        y=[top] * len(infusions), mode="markers", name="Infusion", cliponaxis=False,
        marker={"symbol": "triangle-down", "size": 11, "color": colour},
        hovertext=[infusion_text(mark, zone) if detailed
                   else f"{mark.label}, {_day(mark.administered_at, zone)}"
                   for mark in infusions],
        hovertemplate="%{hovertext}<extra></extra>",
    ))


def infusion_text(mark: InfusionMark, zone: dt.tzinfo, separator: str = "<br>") -> str:
    """What was given and observed at an infusion: dose, vitals before, at peak and after,
    and side effects."""
    lines = [f"{mark.label}, {_day(mark.administered_at, zone)} "
             f"{to_local(mark.administered_at, zone):%H:%M}",
             f"Dose {mark.dose_mg_per_kg:g} mg/kg, {mark.total_dose_mg:g} mg in total"]
    lines += [f"{when}: {vitals_text(vitals)}"
              for when, vitals in (("Before", mark.before), ("Peak", mark.peak),
                                   ("After", mark.after))]
    lines.append("Side effects: " + (", ".join(mark.side_effects) or "none recorded"))
    return separator.join(lines)


def vitals_text(vitals: Vitals) -> str:
    """Vitals as one short line, with a dash for what was not measured."""
    pressure = (f"{vitals.systolic}/{vitals.diastolic}"
                if vitals.systolic is not None and vitals.diastolic is not None else "—")
    heart_rate = vitals.heart_rate if vitals.heart_rate is not None else "—"
    spo2 = f"{vitals.spo2}%" if vitals.spo2 is not None else "—"
    return f"BP {pressure}, HR {heart_rate}, SpO2 {spo2}"


def _layout(*, y_max: int, y_title: str, range_buttons: bool) -> dict[str, Any]:
    xaxis: dict[str, Any] = {"type": "date", "gridcolor": PALETTE["grid"],
                             "tickformat": "%-d %b", "hoverformat": "%-d %b %Y"}
    if range_buttons:
        xaxis["rangeselector"] = {
            "buttons": list(RANGE_BUTTONS), "x": 0, "xanchor": "left", "y": 1.06,
            "yanchor": "bottom", "bgcolor": PALETTE["button"],
            "activecolor": PALETTE["button active"],
            "font": {"size": 13, "color": PALETTE["text"]},
        }
    return {
        "height": 300,
        # Room above the plot for the range buttons, clear of the infusion markers' tips.
        "margin": {"l": 44, "r": 12, "t": 52 if range_buttons else 16, "b": 40},
        "showlegend": True,
        "legend": {"orientation": "h", "x": 0, "y": -0.18, "yanchor": "top",
                   "font": {"size": 12}},
        "plot_bgcolor": "#ffffff",
        "paper_bgcolor": "#ffffff",
        "hovermode": "closest",
        "dragmode": False,
        "yaxis": {"range": [0, y_max], "title": {"text": y_title}, "fixedrange": True,
                  "gridcolor": PALETTE["grid"], "zeroline": False},
        "xaxis": xaxis,
        "font": {"family": FONT, "color": PALETTE["text"], "size": 12},
        "hoverlabel": {"font": {"family": FONT, "size": 13}, "align": "left"},
    }


def _plain(figure: go.Figure) -> dict[str, Any]:
    """The figure as JSON-ready data, without plotly.py's default template (about 9 kB that
    would repeat plotly.js's own defaults on every chart)."""
    data = json.loads(figure.to_json())
    data["layout"].pop("template", None)
    return data


def _local(moment: dt.datetime, zone: dt.tzinfo) -> str:
    return to_local(moment, zone).strftime("%Y-%m-%d %H:%M")


def _day(moment: dt.datetime, zone: dt.tzinfo) -> str:
    return to_local(moment, zone).strftime("%-d %b %Y")


# --- charts: figures with their tables ----------------------------------------------------

def clinician_charts(series: Sequence[Series], infusions: Sequence[InfusionMark],
                     zone: dt.tzinfo, summaries: Mapping[str, str] | None = None) -> list[Chart]:
    """The clinician's charts of one patient: each measure's total with its cut-point or
    bands, safety flags, infusions and the point change is read from, with the sentence from
    ``summaries`` (by measure) above it; then the parts of any measure that has them (the
    PCL-5 clusters) right after its total."""
    charts = []
    for entry in in_measure_order(series):
        charts.append(Chart(
            title=f"{entry.measure} total",
            description=f"{entry.measure} total over time"
                        + (" with infusions marked" if infusions else "")
                        + "; the same figures are in the tables below.",
            figure=total_figure(entry, infusions, zone),
            tables=(_scores_table(entry, zone, detailed=True),
                    *_infusions_table(infusions, zone, detailed=True)),
            summary=(summaries or {}).get(entry.measure, ""),
        ))
        if entry.parts and any(p.subscales for p in entry.points):
            charts.append(Chart(
                title=f"{entry.measure} clusters",
                description=f"{entry.measure} cluster totals over time; the same figures are "
                            "in the table below.",
                figure=parts_figure(entry, infusions, zone),
                tables=(_parts_table(entry, zone),),
            ))
    return charts


def patient_charts(series: Sequence[Series], infusions: Sequence[InfusionMark],
                   zone: dt.tzinfo, summaries: Mapping[str, str] | None = None) -> list[Chart]:
    """The patient's own charts: one plain line per measure with their infusions, and the
    sentence from ``summaries`` (by measure) above each."""
    return [
        Chart(title=f"Your {entry.measure} scores",
              description=f"Your {entry.measure} scores over time"
                          + (" with your infusions marked" if infusions else "")
                          + "; the same figures are in the table below.",
              figure=total_figure(entry, infusions, zone, simple=True),
              tables=(_scores_table(entry, zone, detailed=False),
                      *_infusions_table(infusions, zone, detailed=False)),
              summary=(summaries or {}).get(entry.measure, ""))
        for entry in in_measure_order(series)
    ]


def in_measure_order(series: Sequence[Series]) -> list[Series]:
    """The series in the definitions' order (``instruments.measures``), headline measures
    first; measures without a display after them, in the order given."""
    ranks = {m.name: (not m.headline, m.order) for m in instruments.measures()}
    last = (True, float("inf"))
    return sorted(series, key=lambda entry: ranks.get(entry.measure, last))


def weekly_mean_chart(measure: str, total_max: int, weeks: Sequence[WeeklyMean],
                      patients: int | None = None) -> Chart:
    """Mean of a measure by week since the first infusion, with its table; ``patients``
    (how many contribute) goes in the sentence above the chart."""
    rows = tuple(
        (str(w.week) + (" (baseline)" if w.week == 0 else ""), str(w.n), f"{w.mean:.1f}",
         f"{w.low:.1f} to {w.high:.1f}" if w.low is not None else "— (n < 2)")
        for w in weeks)
    return Chart(
        title=f"Mean {measure} by week since the first infusion",
        description=f"Mean {measure} total by week since the first infusion, with 95% "
                    "confidence intervals; the same figures are in the table below.",
        figure=weekly_mean_figure(measure, total_max, weeks),
        summary="" if patients is None else
        f"From {patients} patient{'s' if patients != 1 else ''}; n for each week is on hover "
        "and in the table.",
        tables=(Table(caption=f"Mean {measure} by week since the first infusion",
                      columns=(Column("Week"), Column("n", True), Column("Mean", True),
                               Column("95% CI", True)),
                      rows=rows),),
    )


def _scores_table(series: Series, zone: dt.tzinfo, *, detailed: bool) -> Table:
    columns = [Column("Date"), Column(f"Total (0–{series.total_max})", True)]
    if detailed and series.bands:
        columns.append(Column("Band"))
    if detailed and any(p.flagged for p in series.points):
        columns.append(Column("Safety flag"))
    start = series.reference.record if detailed and series.reference is not None else None
    rows = []
    for point in series.points:
        row = [_day(point.administered_at, zone)
               + (f" ({series.reference.kind})" if point is start else ""), str(point.total)]
        if detailed and series.bands:
            band = next((b for b in series.bands if b.min <= point.total <= b.max), None)
            row.append(band.label if band else "")
        if len(columns) > len(row):
            row.append("; ".join(point.alerts))
        rows.append(tuple(row))
    caption = f"{series.title} totals by date" if detailed else f"Your {series.measure} scores"
    return Table(caption=caption, columns=tuple(columns), rows=tuple(rows))


def _parts_table(series: Series, zone: dt.tzinfo) -> Table:
    columns = (Column("Date"),) + tuple(
        Column(f"{part.key} {part.label} (0–{part.max})", True) for part in series.parts)
    rows = tuple((_day(p.administered_at, zone),)
                 + tuple(str(p.subscales.get(part.key, "—")) for part in series.parts)
                 for p in series.points if p.subscales)
    return Table(caption=f"{series.measure} cluster totals by date", columns=columns, rows=rows)


def _infusions_table(infusions: Sequence[InfusionMark], zone: dt.tzinfo, *,
                     detailed: bool) -> tuple[Table, ...]:
    if not infusions:
        return ()
    if not detailed:
        return (Table(caption="Your infusions", columns=(Column("Date"), Column("Infusion")),
                      rows=tuple((_day(m.administered_at, zone), m.label) for m in infusions)),)
    return (Table(
        caption="Infusions marked on the chart",
        columns=(Column("Date"), Column("Infusion"), Column("Dose"), Column("Before"),
                 Column("Peak"), Column("After"), Column("Side effects")),
        rows=tuple((_day(m.administered_at, zone), m.label,
                    f"{m.dose_mg_per_kg:g} mg/kg, {m.total_dose_mg:g} mg",
                    vitals_text(m.before), vitals_text(m.peak), vitals_text(m.after),
                    ", ".join(m.side_effects) or "none recorded")
                   for m in infusions),
    ),)
