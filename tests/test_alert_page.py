"""The alerts page from its Jinja2 template: every text that comes from the data or the config
reaches the page HTML-escaped, in its place, and Chromium shows it as text (none of its markup
becomes an element, none of its scripts is a script)."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from browser import assert_report_rendered, rendered_dom
from markupsafe import escape
from test_alert_report import alert, device_days, run_report

from jobs.alerts.page import device_anchor, render_alerts_html


def hostile(field: str) -> str:
    """Markup, a script, both quotes and an ampersand, named after the field it goes in. The
    script throws rather than calls alert(), which would block headless Chromium: run, it
    is a script error the page records."""
    return f'<script>throw "injected: {field}"</script>"\'&{field}'


# Fields shown cut to a date's 10 characters get a 10-character value.
SHORT = {
    "window_end": "<b>\"'&</b>",
    "baseline_start": "<i>\"'&</i>",
    "first_alerted_on": "<u>\"'&</u>",
}
VALUES = {
    field: SHORT.get(field, hostile(field))
    for field in (
        "run_id",
        "run_date",
        "window_end",
        "baseline_start",
        "window_days",
        "baseline_days",
        "counts_table",
        "findings_rule",
        "previous_run_date",
        "cleared_device",
        "device_id",
        "device_beyond_evidence",
        "service_point_id",
        "customer_class",
        "alert_rule",
        "status",
        "first_alerted_on",
        "finding_rule",
        "explained_by",
        "currency",
        "command",
    )
}
# Where each field shows, ``{}`` standing for its escaped value: every place must hold it.
PLACES = {
    "run_id": ["(run <code>{}</code>)"],
    "run_date": [
        "<title>Alerts of run date {}</title>",
        "<h1>Alerts of run date {}</h1>",
        "Run date <strong>{}</strong>",
    ],
    "window_end": ["2026-11-02 to {}\n("],
    "baseline_start": ["baseline (B) {}\nto 2026-11-01"],
    "window_days": ["({} days); baseline"],
    "baseline_days": ["to 2026-11-01 ({} days).</li>"],
    "counts_table": ['<tr><td>{}</td><td class="number">5</td>'],
    "findings_rule": ['<tr><td>{}</td><td class="number">7</td></tr>'],
    "previous_run_date": ["cleared since the previous run date,\n{}.</li>"],
    "cleared_device": ["<li><code>{}</code></li>"],
    "device_id": [
        '<a href="#{anchor}"><code>{}</code></a>',
        '<section class="device" id="{anchor}" data-device-id="{}">',
        "<h3>#1 <code>{}</code></h3>",
    ],
    "device_beyond_evidence": ['<tr><td class="number">2</td><td><code>{}</code></td>'],
    "service_point_id": ["<td>{}</td>", "Service point <code>{}</code>"],
    "customer_class": ["<td>{}</td>", "· class\n{} ·"],
    "alert_rule": ['<td class="wrap">CONSUMPTION_DROP, {}</td>'],
    "status": ["<td>{}</td>", "\n{}, first alerted on"],
    "first_alerted_on": ["<td>{}</td>", "first alerted on {}, runs alerted"],
    "finding_rule": ["<li>{} fired (metric 2.000)."],
    "explained_by": [" Explained by {}: not counted in the score.</li>"],
    "currency": [
        "<th>estimated value ({})</th>",
        '<td class="number"><span>370.37 {}</span></td>',
        '<td class="number">296.29 {}</td>',
        "estimated unbilled 1,234.6 kWh (370.37 {})",
    ],
    "command": ["Made by <code>{}</code>"],
}
# The page's own elements that a value's markup would add to it.
INJECTED_TAGS = ("b", "i", "u")


def page_inputs(values: dict[str, str]) -> tuple[dict[str, Any], list[dict[str, Any]], list]:
    """A run report, one alert with evidence and one beyond the evidence limit, ``values`` in
    every text field (the benign page gets the field names instead)."""
    report = run_report([values["cleared_device"]])
    report["run_id"] = values["run_id"]
    report["run_date"] = values["run_date"]
    report["parameters"].update(
        window_end=values["window_end"],
        baseline_start=values["baseline_start"],
        window_days=values["window_days"],
        baseline_days=values["baseline_days"],
    )
    report["counts"] = {values["counts_table"]: report["counts"]["device"]}
    report["findings_by_rule"] = {values["findings_rule"]: 7}
    report["history"]["previous_run_date"] = values["previous_run_date"]
    alerts = [
        alert(
            values["device_id"],
            1,
            ["CONSUMPTION_DROP", values["alert_rule"]],
            1234.56,
            370.368,
            service_point_id=values["service_point_id"],
            customer_class=values["customer_class"],
            status=values["status"],
            first_alerted_on=values["first_alerted_on"],
        ),
        alert(values["device_beyond_evidence"], 2, ["REGISTER_ROLLBACK"], 1.0, 0.3),
    ]
    findings = [
        ("CONSUMPTION_DROP", 0.42),
        (values["finding_rule"], 2.0, values["explained_by"]),
    ]
    evidence = device_days(values["device_id"], 1, findings, 4.0)
    return report, alerts, evidence


def render(values: dict[str, str]) -> str:
    report, alerts, evidence = page_inputs(values)
    return render_alerts_html(report, alerts, evidence, values["currency"], values["command"])


@pytest.fixture(scope="module")
def page() -> str:
    """GIVEN every text field from the data and the config holding markup, a script, quotes
    and an ampersand, WHEN the page is rendered."""
    return render(VALUES)


@pytest.fixture(scope="module")
def benign_page() -> str:
    """The same page with plain words in those fields."""
    return render({field: field.replace("_", "-") for field in VALUES})


class Elements(HTMLParser):
    """The start tags of a page, the text of its scripts, and its other text (attribute
    values included), node by node."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.scripts: list[str] = []
        self.texts: list[str] = []
        self.in_script = False
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.texts.extend(value or "" for _, value in attrs)
        self.in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self.in_script = False

    def handle_data(self, data: str) -> None:
        (self.scripts if self.in_script else self.texts).append(data)


@pytest.mark.parametrize("field", sorted(VALUES))
def test_every_field_from_the_data_is_escaped_in_its_place(page: str, field: str) -> None:
    value = VALUES[field]
    escaped = str(escape(value))
    # THEN the value never appears as it is, and its escaped form is in each of its places
    assert value not in page
    assert escaped != value
    for place in PLACES[field]:
        expected = place.replace("{anchor}", device_anchor(value)).format(escaped)
        assert expected in page, f"{field}: {expected!r} is not in the page"


def test_the_hostile_page_has_the_elements_of_the_benign_one(page: str, benign_page: str) -> None:
    # THEN the values' markup added no element: the same tags in the same order as the page
    # with plain words, and no <b>, <i> or <u> (the page uses none)
    hostile_tags, benign_tags = Elements(page).tags, Elements(benign_page).tags
    assert hostile_tags == benign_tags
    assert not set(INJECTED_TAGS) & set(hostile_tags)
    # and a parser reads back every value as text
    texts = Elements(page).texts
    for field, value in VALUES.items():
        assert any(value in text for text in texts), field


def test_the_device_anchor_is_percent_encoded() -> None:
    # GIVEN a device id with markup, quotes, an ampersand and a space WHEN it is an anchor
    anchor = device_anchor("<a b>\"'&")
    # THEN nothing in it needs escaping in an attribute or a URL fragment
    assert anchor == "device-%3Ca%20b%3E%22%27%26"


def test_chromium_shows_the_values_as_text_and_runs_none_of_their_scripts(
    page: str, tmp_path: Path
) -> None:
    # WHEN Chromium opens the hostile page
    path = tmp_path / "alerts.html"
    path.write_text(page, encoding="utf-8")
    dom = rendered_dom(path)
    # THEN the device's charts are drawn and no script failed
    assert_report_rendered(dom, [VALUES["device_id"]])
    # the values are text in the DOM, none of them became a script or an element
    elements = Elements(dom)
    for field, value in VALUES.items():
        assert any(value in text for text in elements.texts), field
    assert not [
        field for field in VALUES for script in elements.scripts if f"injected: {field}" in script
    ]
    assert not set(INJECTED_TAGS) & set(elements.tags)
