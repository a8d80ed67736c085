"""The HTML report of one run's alerts (``reports/run_date=D/alerts.html``).

:func:`render_alerts_html` turns the run report, the ranked alerts and the evidence rows (small,
bounded lists of dicts the job has collected) into one self-contained page: the run's summary,
the ranked alert table, and per device with evidence its daily import, its hourly profile and
its findings in words. This module puts the values in words and builds the plotly figures; the
Jinja2 template ``alerts.html.j2`` beside it lays out the page, with autoescaping on, so every
text taken from the data or the config is HTML-escaped (only plotly.js and plotly's chart HTML
go in as they are). plotly.js is inlined once, so the page opens with no network. The template
is read with ``importlib.resources``, from the checkout or from ``packages.zip``.

The rule thresholds quoted in the findings are the run's own: ``report["parameters"]["rules"]``
(the config's ``rules`` section, as the run used it).
"""

from __future__ import annotations

import functools
import importlib.resources
import string
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import quote

import jinja2
import plotly.io
import plotly.offline
from markupsafe import Markup

# Rules that look only at the shape of the day: energy can be billed in full and still alert.
SHAPE_RULES = frozenset({"ZERO_RUNS", "FLAT_PROFILE", "PROFILE_SHIFT"})
# An estimate below this shows as 0.0 kWh: for a shape-only alert the report says "timing only".
TIMING_ONLY_MAX_KWH = 0.05
TIMING_ONLY = "timing only"
CHART_HEIGHT_PX = 300
BASELINE_COLOUR = "#4c78a8"
WINDOW_COLOUR = "#e45756"
EXPECTED_COLOUR = "#54a24b"
EXPORT_COLOUR = "#b279a2"
WINDOW_SHADE = "rgba(228, 87, 86, 0.10)"
ONE_DAY = timedelta(days=1)
DAILY_TITLE = "Daily import (kWh): W shaded, gaps are days without data"
HOURLY_TITLE = "Hourly profile: mean interval import (kWh) by hour of day, W against B"


def _percent(share: float) -> str:
    return f"{share * 100:.0f} %"


def _kwh(amount: float) -> str:
    return f"{amount:,.1f} kWh"


class _Sentence(string.Formatter):
    """``str.format`` with two more specs: ``kwh`` (``1,234.5 kWh``) and ``%`` (``42 %``)."""

    def format_field(self, value: Any, format_spec: str) -> str:
        if format_spec == "kwh":
            return _kwh(value)
        if format_spec == "%":
            return _percent(value)
        return super().format_field(value, format_spec)


# One sentence per rule: what it means, the measured value ``m`` and, by name, the rule's
# parameters from the run's config (``{min_kwh:kwh}``); formatted by :class:`_Sentence`.
FINDINGS: dict[str, str] = {
    "UNINSTALLED_CONSUMPTION": (
        "{m:kwh} was imported in the window on intervals outside any install period of the "
        "device, energy no account is billed for (UNINSTALLED_CONSUMPTION fires above "
        "{min_kwh:kwh})."
    ),
    "REGISTER_ROLLBACK": (
        "The import register ran backwards by {m:,.2f} kWh in the window: wound back or "
        "reprogrammed, not a rollover (REGISTER_ROLLBACK fires above {min_kwh:,.2f} kWh)."
    ),
    "REVERSE_FLOW": (
        "{m:kwh} was recorded as export at a service point without generation: a meter wired "
        "in reverse (REVERSE_FLOW fires above {min_kwh:kwh})."
    ),
    "TAMPER_EVENTS": (
        "The meter's tamper counter went up {m:,.0f} times in the window: cover opened or a "
        "magnet (TAMPER_EVENTS fires at ≥ {min_events:,.0f})."
    ),
    "ZERO_CONSUMPTION": (
        "The import stopped for {m:,.0f} consecutive days with data, at a place that used to "
        "consume (ZERO_CONSUMPTION fires at ≥ {min_days:,.0f} days below "
        "{max_kwh:,.2f} kWh)."
    ),
    "CONSUMPTION_DROP": (
        "Consumption in the window is {m:%} of the expected level, the baseline mean "
        "times its class's drift (CONSUMPTION_DROP fires at ≤ {max_ratio:%})."
    ),
    "SUSTAINED_DROP": (
        "Even the window's best week is {m:%} of the expected level (baseline mean times "
        "its class's drift): a share of the load gone every week, not a week away "
        "(SUSTAINED_DROP fires at ≤ {max_ratio:%})."
    ),
    "ZERO_RUNS": (
        "On {m:,.0f} days of the window the import stopped for {min_run_hours:,.0f} hours "
        "or more, which no baseline day did (ZERO_RUNS fires at ≥ {min_days:,.0f} days)."
    ),
    "FLAT_PROFILE": (
        "The day's shape has flattened: the variation within a day in the window is "
        "{m:%} of the baseline's (FLAT_PROFILE fires at ≤ {max_cv_ratio:%})."
    ),
    "PROFILE_SHIFT": (
        "The hourly profile of the window correlates {m:.2f} with the baseline's, where 1 is "
        "the same shape (PROFILE_SHIFT fires below {max_correlation:.2f})."
    ),
    "PEER_DEVIATION": (
        "The drop is far outside what the devices of the same class did over the same days: "
        "robust z-score {m:.1f} (PEER_DEVIATION fires at ≤ {max_z:.1f})."
    ),
    "DATA_GAP": (
        "Only {m:%} of the window's expected readings arrived, though the meter was "
        "installed throughout (DATA_GAP fires below {max_present_share:%})."
    ),
}


TEMPLATE = "alerts.html.j2"  # beside this module, in the repository and in packages.zip
COUNT_COLUMNS = ("read", "used", "rejected", "deduplicated", "outside_window")


def render_alerts_html(
    report: dict[str, Any],
    alerts: list[dict[str, Any]],
    evidence: list[dict[str, Any]],
    currency: str,
    command: str,
) -> str:
    """The report page of one run.

    ``report``: the run report (``parameters`` with the window and the ``rules`` config,
    ``counts``, ``findings_by_rule``, ``history``); ``alerts``: alert rows sorted by rank;
    ``evidence``: evidence-table rows of the devices with evidence; ``command``: the command
    line that made the run."""
    rules_config = report["parameters"]["rules"]
    days_by_device: dict[str, list[dict[str, Any]]] = {}
    for row in evidence:
        days_by_device.setdefault(str(row["device_id"]), []).append(row)
    with_evidence = set(days_by_device)
    return _template().render(
        report=report,
        baseline_end=_baseline_end(report["parameters"]),
        command=command,
        currency=currency,
        alerts=[_alert_row(alert, with_evidence, currency) for alert in alerts],
        devices=[
            _device_section(
                alert, days_by_device[str(alert["device_id"])], rules_config, currency, position
            )
            for position, alert in enumerate(alerts)
            if str(alert["device_id"]) in with_evidence
        ],
        count_columns=COUNT_COLUMNS,
        timing_only=TIMING_ONLY,
        plotly_js=Markup(plotly.offline.get_plotlyjs()),
    )


def device_anchor(device_id: str) -> str:
    """The id of a device's section: ``device-`` and its id, percent-encoded."""
    return "device-" + quote(device_id, safe="")


def estimate_text(alert: Mapping[str, Any], currency: str) -> tuple[str, str]:
    """The estimated unbilled energy and its value as shown, or "timing only" for both when
    only shape rules fired and the estimate is about 0 (the energy was billed, its timing
    changed)."""
    kwh = alert["estimated_unbilled_kwh"]
    if kwh < TIMING_ONLY_MAX_KWH and set(alert["rules"]) <= SHAPE_RULES:
        return TIMING_ONLY, TIMING_ONLY
    return _kwh(kwh), _money(alert["estimated_value"], currency)


def finding_text(
    rule: str, metric: float | None, rules_config: Mapping[str, Mapping[str, Any]]
) -> str:
    """A fired rule in words, with its metric and the threshold it crossed."""
    if rule not in FINDINGS or metric is None:
        return f"{rule} fired (metric {'unknown' if metric is None else f'{metric:,.3f}'})."
    return _Sentence().format(FINDINGS[rule], m=metric, **rules_config[rule])


def explained_text(confounder: str | None) -> str:
    """What a finding's confounder means for the score (nothing when none explains it)."""
    if confounder is None:
        return ""
    return f" Explained by {confounder}: not counted in the score."


def _rule_order(rule: str, rules_config: Mapping[str, Any]) -> tuple[int, str]:
    """Rules in the config's order (strongest first), any other rule after them."""
    names = list(rules_config)
    return (names.index(rule) if rule in names else len(names), rule)


def _money(amount: float, currency: str) -> str:
    return f"{amount:,.2f} {currency}"


def _iso(value: date | datetime | str | None) -> str:
    if value is None:
        return ""
    return value.isoformat()[:10] if isinstance(value, date | datetime) else str(value)[:10]


def _number(count: int) -> str:
    return f"{count:,}"


@functools.cache
def _template() -> jinja2.Template:
    """The page's template, read from this package (a directory, or ``packages.zip`` on a
    cluster) and compiled once; every value it prints is HTML-escaped unless it is Markup."""
    environment = jinja2.Environment(
        loader=jinja2.FunctionLoader(_template_source),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters.update(iso=_iso, number=_number)
    return environment.get_template(TEMPLATE)


def _template_source(name: str) -> str:
    return importlib.resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _baseline_end(parameters: Mapping[str, Any]) -> str:
    """The last day of B: the day before W."""
    return (date.fromisoformat(_iso(parameters["window_start"])) - ONE_DAY).isoformat()


def _alert_row(alert: dict[str, Any], with_evidence: set[str], currency: str) -> dict[str, Any]:
    """An alert's line in the table; ``anchor``: its section's id, when it has one."""
    device = str(alert["device_id"])
    kwh, value = estimate_text(alert, currency)
    return {
        "alert": alert,
        "device": device,
        "anchor": device_anchor(device) if device in with_evidence else None,
        "kwh": kwh,
        "value": value,
        "timing_only": kwh == TIMING_ONLY,
        "priority": _money(alert["priority"], currency),
    }


def _device_section(
    alert: dict[str, Any],
    days: list[dict[str, Any]],
    rules_config: Mapping[str, Mapping[str, Any]],
    currency: str,
    position: int,
) -> dict[str, Any]:
    """A device's section: its alert line, its findings in words (strongest rule first) and
    its two charts."""
    days = sorted(days, key=lambda row: _iso(row["day"]))
    findings = [
        finding_text(finding["rule"], finding["metric"], rules_config)
        + explained_text(finding.get("explained_by"))
        for finding in sorted(
            days[0]["findings"] or [],
            key=lambda finding: _rule_order(finding["rule"], rules_config),
        )
    ]
    return {
        **_alert_row(alert, {str(alert["device_id"])}, currency),
        "findings": findings,
        "charts": [
            _chart(_daily_figure(days), f"chart-daily-{position}", DAILY_TITLE),
            _chart(_hourly_figure(days[0]), f"chart-hourly-{position}", HOURLY_TITLE),
        ],
    }


def _chart(figure: dict[str, Any], div_id: str, title: str) -> dict[str, Any]:
    """A figure (plain plotly data and layout, built here so plotly need not validate it
    again): its title, and plotly's div with its drawing script. That div is Markup, the one
    piece of HTML besides plotly.js that the page does not escape: plotly writes it, and the
    figure's JSON in it has ``<``, ``>`` and ``/`` escaped by plotly."""
    axis = {"gridcolor": "#eee", "linecolor": "#999", "zeroline": False}
    figure["layout"] = {
        "height": CHART_HEIGHT_PX,
        "margin": {"l": 50, "r": 10, "t": 30, "b": 30},
        "legend": {"orientation": "h", "y": -0.2},
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "font": {"size": 12},
        **figure.get("layout", {}),
    }
    figure["layout"]["xaxis"] = {**axis, **figure["layout"].get("xaxis", {})}
    figure["layout"]["yaxis"] = {**axis, "rangemode": "tozero"}
    body = plotly.io.to_html(
        figure,
        validate=False,
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        default_height=f"{CHART_HEIGHT_PX}px",
        config={"displayModeBar": False, "responsive": True},
    )
    return {"title": title, "html": Markup(body)}


def _line(
    x: list[Any], y: list[Any], name: str, colour: str, dash: str = "solid", markers: bool = True
) -> dict[str, Any]:
    return {
        "type": "scatter",
        "x": x,
        "y": y,
        "name": name,
        "mode": "lines+markers" if markers else "lines",
        "line": {"color": colour, "dash": dash},
        "marker": {"size": 4},
    }


def _daily_figure(days: list[dict[str, Any]]) -> dict[str, Any]:
    """Daily import over B and W (days without data are gaps), W shaded, the expected
    daily level over W, and export when there is any."""
    x = [_iso(row["day"]) for row in days]

    def import_in(period: str) -> list[float | None]:
        return [
            row["import_kwh"] if row["has_data"] and row["period"] == period else None
            for row in days
        ]

    traces = [
        _line(x, import_in("baseline"), "import in B", BASELINE_COLOUR),
        _line(x, import_in("window"), "import in W", WINDOW_COLOUR),
    ]
    window_days = [row for row in days if row["period"] == "window"]
    expected = [row["expected_daily_kwh"] for row in window_days]
    if any(level is not None for level in expected):
        traces.append(
            _line(
                [_iso(row["day"]) for row in window_days],
                expected,
                "expected in W",
                EXPECTED_COLOUR,
                "dash",
                False,
            )
        )
    exports = [row["export_kwh"] if row["has_data"] else None for row in days]
    if any(amount for amount in exports):
        traces.append(_line(x, exports, "export", EXPORT_COLOUR, "dot"))
    return {"data": traces, "layout": _window_shading(window_days) if window_days else {}}


def _window_shading(window_days: list[dict[str, Any]]) -> dict[str, Any]:
    """The daily chart's layout over W: the window shaded from half a day before its first
    day to half a day after its last, marked "W"."""
    first, last = (date.fromisoformat(_iso(window_days[i]["day"])) for i in (0, -1))
    start = f"{first - ONE_DAY}T12:00"
    return {
        "shapes": [
            {
                "type": "rect",
                "xref": "x",
                "yref": "paper",
                "x0": start,
                "x1": f"{last}T12:00",
                "y0": 0,
                "y1": 1,
                "fillcolor": WINDOW_SHADE,
                "line": {"width": 0},
                "layer": "below",
            }
        ],
        "annotations": [
            {
                "xref": "x",
                "yref": "paper",
                "x": start,
                "y": 1,
                "text": "W",
                "showarrow": False,
                "xanchor": "left",
                "yanchor": "top",
            }
        ],
    }


def _hourly_figure(day: dict[str, Any]) -> dict[str, Any]:
    """W's hourly profile against B's: mean interval import per hour of day."""
    hours = list(range(24))
    return {
        "data": [
            _line(hours, list(day["baseline_hourly_kwh"] or [None] * 24), "B", BASELINE_COLOUR),
            _line(hours, list(day["window_hourly_kwh"] or [None] * 24), "W", WINDOW_COLOUR),
        ],
        "layout": {"xaxis": {"dtick": 3, "title": {"text": "hour of day (UTC)"}}},
    }
