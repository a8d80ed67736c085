"""The HTML report of one run's alerts (``reports/run_date=D/alerts.html``).

:func:`render_alerts_html` turns the run report, the ranked alerts and the evidence rows (small,
bounded lists of dicts the job has collected) into one self-contained page: the run's summary,
the ranked alert table, and per device with evidence its daily import, its hourly profile and
its findings in words. Pure Python and plotly; plotly.js is inlined once, so the page opens
with no network. Every text taken from the data is HTML-escaped.

The rule thresholds quoted in the findings are the run's own: ``report["parameters"]["rules"]``
(the config's ``rules`` section, as the run used it).
"""

from __future__ import annotations

import html
import string
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import quote

import plotly.io
import plotly.offline

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


STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 80rem; padding: 0 1rem;
       color: #222; line-height: 1.4; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.25rem; margin-top: 2rem; } h3 { font-size: 1.1rem; }
h4 { font-size: 0.95rem; margin: 0.5rem 0 0; font-weight: 600; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.number { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td { white-space: nowrap; } td.wrap { white-space: normal; }
code { background: #f3f3f3; padding: 0 0.2rem; }
.summary { display: flex; flex-wrap: wrap; gap: 0 2rem; }
section.device { border-top: 2px solid #ddd; margin-top: 1.5rem; }
/* Fixed columns: a chart is drawn as soon as it is parsed, at its column's width. */
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(30rem, 1fr)); gap: 1rem; }
.timing-only { font-style: italic; color: #8a5a00; }
#script-errors { color: #b00; border: 2px solid #b00; padding: 0.5rem 2rem; }
#script-errors:empty { display: none; }
"""

# Records every script error into #script-errors, so a person and a browser test both see it.
ERROR_HOOK = """
(function () {
  var list = document.getElementById("script-errors");
  function record(text) {
    var item = document.createElement("li");
    item.textContent = text;
    list.appendChild(item);
  }
  window.addEventListener("error", function (event) {
    record((event.message || "error") + " (" + (event.filename || "page") + ":" + \
(event.lineno || 0) + ")");
  }, true);
  window.addEventListener("unhandledrejection", function (event) {
    record("unhandled rejection: " + event.reason);
  });
})();
"""


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
    sections = [
        _device_section(
            alert, days_by_device[str(alert["device_id"])], rules_config, currency, position
        )
        for position, alert in enumerate(alerts)
        if str(alert["device_id"]) in days_by_device
    ]
    run_date = _text(report["run_date"])
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>Alerts of run date {run_date}</title>",
            f"<style>{STYLE}</style></head><body>",
            '<ul id="script-errors"></ul>',
            f"<script>{ERROR_HOOK}</script>",
            f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>',
            f"<h1>Alerts of run date {run_date}</h1>",
            (
                f"<p>Made by <code>{_text(command)}</code> "
                f"(run <code>{_text(report['run_id'])}</code>).</p>"
            ),
            _run_summary(report),
            _alert_table(alerts, report["alerts"], set(days_by_device), currency),
            "<h2>Evidence per alerted device</h2>",
            *(sections or ["<p>No alerted device has evidence in this run.</p>"]),
            "</body></html>",
        ]
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


def _text(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _money(amount: float, currency: str) -> str:
    return f"{amount:,.2f} {currency}"


def _iso(value: date | datetime | str | None) -> str:
    if value is None:
        return ""
    return value.isoformat()[:10] if isinstance(value, date | datetime) else str(value)[:10]


def _table(
    header: Iterable[str], rows: Iterable[Iterable[str]], classes: Mapping[int, str] | None = None
) -> str:
    """An HTML table, ``classes`` per column index; header and cells are HTML already."""
    head = "".join(f"<th>{cell}</th>" for cell in header)
    cell_tags = {i: f'<td class="{name}">' for i, name in (classes or {}).items()}
    body = "".join(
        "<tr>"
        + "".join(f"{cell_tags.get(i, '<td>')}{cell}</td>" for i, cell in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _run_summary(report: dict[str, Any]) -> str:
    parameters = report["parameters"]
    window_start = date.fromisoformat(_iso(parameters["window_start"]))
    baseline_end = window_start - ONE_DAY
    counts = _table(
        ["table", "read", "used", "rejected", "deduplicated", "outside window"],
        (
            [_text(table)]
            + [
                f"{entry[key]:,}"
                for key in ("read", "used", "rejected", "deduplicated", "outside_window")
            ]
            for table, entry in report["counts"].items()
        ),
        dict.fromkeys(range(1, 6), "number"),
    )
    findings = _table(
        ["rule", "findings"],
        ([_text(rule), f"{count:,}"] for rule, count in report["findings_by_rule"].items()),
        {1: "number"},
    )
    history = report["history"]
    previous = history["previous_run_date"]
    cleared = history["cleared_devices"]
    cleared_list = (
        '<ul class="cleared">'
        + "".join(f"<li><code>{_text(device)}</code></li>" for device in cleared)
        + "</ul>"
        if cleared
        else "<p>No device cleared.</p>"
    )
    return f"""<h2>The run</h2>
<ul>
<li>Run date <strong>{_text(report["run_date"])}</strong>; detection window (W)
{_text(_iso(parameters["window_start"]))} to {_text(_iso(parameters["window_end"]))}
({_text(parameters["window_days"])} days); baseline (B) {_text(_iso(parameters["baseline_start"]))}
to {baseline_end.isoformat()} ({_text(parameters["baseline_days"])} days).</li>
<li>Alerts: <strong>{_text(report["alerts"])}</strong> \
(<span id="history-new">{history["new"]:,}</span> new,
<span id="history-continuing">{history["continuing"]:,}</span> continuing);
<span id="history-cleared">{history["cleared"]:,}</span> cleared since the previous run date,
{_text(previous) if previous else "none within the look-back"}.</li>
</ul>
<div class="summary">
<div><h3>Rows per input table</h3>{counts}</div>
<div><h3>Findings per rule</h3>{findings}</div>
<div><h3>Cleared devices</h3>
<p>Alerted on the previous run date, not on this one.</p>{cleared_list}</div>
</div>"""


def _alert_table(
    alerts: list[dict[str, Any]], total: int, with_evidence: set[str], currency: str
) -> str:
    rows = []
    for alert in alerts:
        device = str(alert["device_id"])
        kwh, value = estimate_text(alert, currency)
        estimate_class = ' class="timing-only"' if kwh == TIMING_ONLY else ""
        link = (
            f'<a href="#{_text(device_anchor(device))}"><code>{_text(device)}</code></a>'
            if device in with_evidence
            else f"<code>{_text(device)}</code>"
        )
        rows.append(
            [
                f"{alert['rank']:,}",
                link,
                _text(alert["service_point_id"] or ""),
                _text(alert["customer_class"] or ""),
                f"{alert['score']:.3f}",
                _text(", ".join(alert["rules"])),
                f"<span{estimate_class}>{_text(kwh)}</span>",
                f"<span{estimate_class}>{_text(value)}</span>",
                _text(_money(alert["priority"], currency)),
                _text(alert["status"]),
                _text(_iso(alert["first_alerted_on"])),
                f"{alert['runs_alerted']:,}",
            ]
        )
    table = _table(
        [
            "rank",
            "device",
            "service point",
            "class",
            "score",
            "rules",
            "estimated unbilled",
            f"estimated value ({_text(currency)})",
            "priority",
            "status",
            "first alerted on",
            "runs alerted",
        ],
        rows,
        {**dict.fromkeys((0, 4, 6, 7, 8, 11), "number"), 5: "wrap"},
    )
    without_evidence = len([a for a in alerts if str(a["device_id"]) not in with_evidence])
    notes = [
        f"The {len(alerts):,} highest-ranked of the run's {total:,} alerts."
        if len(alerts) < total
        else "",
        f"{without_evidence:,} of them have no evidence section (beyond the evidence limit)."
        if without_evidence
        else "",
    ]
    note = f"<p>{' '.join(n for n in notes if n)}</p>" if any(notes) else ""
    return f'<h2>Alerts, by rank</h2>\n{note}<div id="alerts">{table}</div>'


def _device_section(
    alert: dict[str, Any],
    days: list[dict[str, Any]],
    rules_config: Mapping[str, Mapping[str, Any]],
    currency: str,
    position: int,
) -> str:
    device = str(alert["device_id"])
    days = sorted(days, key=lambda row: _iso(row["day"]))
    kwh, value = estimate_text(alert, currency)
    estimate = (
        f'<span class="timing-only">{TIMING_ONLY}: the energy was billed, its timing changed</span>'
        if kwh == TIMING_ONLY
        else f"estimated unbilled {_text(kwh)} ({_text(value)})"
    )
    findings = "".join(
        f"<li>{_text(finding_text(finding['rule'], finding['metric'], rules_config))}"
        f"{_text(explained_text(finding.get('explained_by')))}</li>"
        for finding in sorted(
            days[0]["findings"] or [],
            key=lambda finding: _rule_order(finding["rule"], rules_config),
        )
    )
    daily = _chart(_daily_figure(days), f"chart-daily-{position}", DAILY_TITLE)
    hourly = _chart(_hourly_figure(days[0]), f"chart-hourly-{position}", HOURLY_TITLE)
    return f"""<section class="device" id="{_text(device_anchor(device))}" \
data-device-id="{_text(device)}">
<h3>#{alert["rank"]:,} <code>{_text(device)}</code></h3>
<p>Service point <code>{_text(alert["service_point_id"] or "unknown")}</code> · class
{_text(alert["customer_class"] or "unknown")} · score {alert["score"]:.3f} · {estimate} ·
{_text(alert["status"])}, first alerted on {_text(_iso(alert["first_alerted_on"]))}, runs alerted
{alert["runs_alerted"]:,}</p>
<ul class="findings">{findings}</ul>
<div class="charts">{daily}{hourly}</div>
</section>"""


def _chart(figure: dict[str, Any], div_id: str, title: str) -> str:
    """A figure (plain plotly data and layout, built here so plotly need not validate it
    again) as a div with its drawing script."""
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
    return f'<div class="chart"><h4>{_text(title)}</h4>{body}</div>'


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
    layout: dict[str, Any] = {}
    if window_days:
        first, last = (date.fromisoformat(_iso(window_days[i]["day"])) for i in (0, -1))
        start = f"{first - ONE_DAY}T12:00"
        layout["shapes"] = [
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
        ]
        layout["annotations"] = [
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
        ]
    return {"data": traces, "layout": layout}


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
