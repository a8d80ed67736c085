"""The alerts' HTML report: its content on small hand-built inputs, and the page in headless
Chromium (every device's charts drawn, no script error; a page whose charts do not draw fails)."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import plotly.offline
import pytest
from browser import assert_report_rendered, parse_rendered, rendered_dom, screenshot
from markupsafe import escape
from pyspark.sql import SparkSession

from dependencies.config import bundled_defaults
from dependencies.publish import read_published
from jobs import rules
from jobs.alerts.page import (
    TIMING_ONLY,
    device_anchor,
    finding_text,
    render_alerts_html,
)

RULES_CONFIG = bundled_defaults()["rules"]
WINDOW_START = date(2026, 11, 2)
BASELINE_START = date(2026, 10, 5)
RUN_DATE = date(2026, 11, 15)
HOSTILE_ID = '<script>alert("x")</script>&'
COMMAND = "jobs/datalake_job.py --config configs/datalake_config.json --run-date 2026-11-15"


def alert(
    device_id: str, rank: int, rules_fired: list[str], kwh: float, value: float, **extra: Any
) -> dict[str, Any]:
    """An alert row as the job publishes it."""
    return {
        "device_id": device_id,
        "service_point_id": f"SP-{rank}",
        "customer_class": "RESIDENTIAL",
        "score": 0.8,
        "rules": rules_fired,
        "window_start": WINDOW_START,
        "window_end": RUN_DATE,
        "estimated_unbilled_kwh": kwh,
        "estimated_value": value,
        "priority": 0.8 * value,
        "rank": rank,
        "status": "new",
        "first_alerted_on": RUN_DATE,
        "runs_alerted": 1,
        **extra,
    }


def device_days(
    device_id: str,
    rank: int,
    findings: list[tuple],
    window_kwh: float,
    missing_days: int = 0,
) -> list[dict[str, Any]]:
    """Evidence rows of one device: 28 baseline days at 10 kWh, 14 window days at
    ``window_kwh``, the last ``missing_days`` of W without data (the last a partial day);
    ``findings``: (rule, metric[, the confounder that explains it])."""
    rows = []
    for offset in range(42):
        day = BASELINE_START + timedelta(days=offset)
        in_window = day >= WINDOW_START
        has_data = not (in_window and (RUN_DATE - day).days < missing_days)
        rows.append(
            {
                "device_id": device_id,
                "rank": rank,
                "day": day,
                "period": "window" if in_window else "baseline",
                # a day without data may still have a few readings: the run date, here
                "import_kwh": (window_kwh if in_window else 10.0)
                if has_data
                else (0.5 if day == RUN_DATE else None),
                "export_kwh": 0.0 if has_data else None,
                "has_data": has_data,
                "expected_daily_kwh": 9.5,
                "window_hourly_kwh": [window_kwh / 96] * 24,
                "baseline_hourly_kwh": [0.05 + 0.1 * (8 <= hour <= 20) for hour in range(24)],
                "findings": [
                    {"rule": rule, "metric": metric, "explained_by": explained}
                    for rule, metric, explained in ((*f, None)[:3] for f in findings)
                ],
            }
        )
    return rows


def run_report(cleared: list[str]) -> dict[str, Any]:
    """A run report as the job writes it, with the rules config the run used."""
    return {
        "run_id": "2026-11-15-abc",
        "run_date": RUN_DATE.isoformat(),
        "parameters": {
            "window_start": WINDOW_START.isoformat(),
            "window_end": RUN_DATE.isoformat(),
            "baseline_start": BASELINE_START.isoformat(),
            "window_days": 14,
            "baseline_days": 28,
            "rules": RULES_CONFIG,
        },
        "counts": {
            "device": {"read": 5, "used": 5, "rejected": 0, "deduplicated": 0, "outside_window": 0},
            "measurements": {
                "read": 12345,
                "used": 12000,
                "rejected": 45,
                "deduplicated": 100,
                "outside_window": 200,
            },
        },
        "findings_by_rule": {
            name: 1 if name in ("CONSUMPTION_DROP", "FLAT_PROFILE") else 0 for name in rules.RULES
        },
        "alerts": 5,
        "history": {
            "previous_run_date": "2026-11-14",
            "new": 3,
            "continuing": 1,
            "cleared": len(cleared),
            "cleared_devices": cleared,
        },
    }


@pytest.fixture(scope="module")
def inputs() -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """GIVEN a drop with tampering (rank 1), a shape-only alert (rank 2), a device with a
    hostile id and three days of W without data (rank 3), and an alert beyond the evidence
    limit (rank 4, no evidence rows), of the run's 5 alerts; two devices cleared since the
    previous run date."""
    alerts = [
        alert("D-DROP", 1, ["CONSUMPTION_DROP", "TAMPER_EVENTS"], 1234.56, 370.368),
        alert(
            "D-SHAPE",
            2,
            ["FLAT_PROFILE", "PROFILE_SHIFT"],
            0.0,
            0.0,
            status="continuing",
            first_alerted_on=date(2026, 11, 12),
            runs_alerted=4,
        ),
        alert(HOSTILE_ID, 3, ["REVERSE_FLOW"], 20.0, 6.0),
        alert("D-NO-EVIDENCE", 4, ["REGISTER_ROLLBACK"], 1.0, 0.3),
    ]
    evidence = (
        device_days("D-DROP", 1, [("CONSUMPTION_DROP", 0.42), ("TAMPER_EVENTS", 3.0)], 4.0)
        + device_days(
            "D-SHAPE",
            2,
            [
                ("FLAT_PROFILE", 0.2),
                ("PROFILE_SHIFT", 0.1),
                ("SUSTAINED_DROP", 0.8, "BASE_LOAD_HELD"),
            ],
            10.0,
        )
        + device_days(HOSTILE_ID, 3, [("REVERSE_FLOW", 20.0)], 10.0, missing_days=3)
    )
    return run_report(["D-GONE", "<b>gone</b>"]), alerts, evidence


@pytest.fixture(scope="module")
def page(inputs: tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]) -> str:
    """WHEN the report is rendered."""
    report, alerts, evidence = inputs
    return render_alerts_html(report, alerts, evidence, "EUR", COMMAND)


def section(page: str, device_id: str) -> str:
    """The HTML of a device's section."""
    start = page.index(f'<section class="device" id="{escape(device_anchor(device_id))}"')
    return page[start : page.index("</section>", start)]


def alert_row(page: str, device_id: str) -> str:
    """The HTML of a device's row in the alert table."""
    table = page[page.index('<div id="alerts">') :]
    start = table.index(f"<code>{escape(device_id)}</code>")
    return table[table.rindex("<tr>", 0, start) : table.index("</tr>", start)]


def test_one_section_per_device_with_evidence_in_rank_order(page: str) -> None:
    # THEN the devices with evidence have a section each, by rank; the one beyond the limit none
    sections = re.findall(r'<section class="device" id="([^"]+)" data-device-id="([^"]+)"', page)
    assert sections == [
        ("device-D-DROP", "D-DROP"),
        ("device-D-SHAPE", "D-SHAPE"),
        (escape(device_anchor(HOSTILE_ID)), escape(HOSTILE_ID)),
    ]
    assert "1 of them have no evidence section" in page
    assert '<a href="#device-D-DROP">' in alert_row(page, "D-DROP")
    assert "<a href" not in alert_row(page, "D-NO-EVIDENCE")
    # each section holds its two charts
    for device in ("D-DROP", "D-SHAPE", HOSTILE_ID):
        assert len(re.findall(r'class="plotly-graph-div"', section(page, device))) == 2


def test_shape_only_alert_says_timing_only(page: str) -> None:
    # THEN the shape-only alert with no energy at stake shows "timing only", not 0
    cells = re.findall(r"<td[^>]*>(.*?)</td>", alert_row(page, "D-SHAPE"))
    assert cells[6:8] == [f'<span class="timing-only">{TIMING_ONLY}</span>'] * 2
    assert cells[8] == "0.00 EUR"  # its priority: ranked after every alert with energy at stake
    assert TIMING_ONLY in section(page, "D-SHAPE")
    # and an alert with energy at stake shows its figures
    assert TIMING_ONLY not in alert_row(page, "D-DROP")


def test_values_are_formatted_with_their_unit_and_currency(page: str) -> None:
    row = alert_row(page, "D-DROP")
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
    assert cells[0] == "1"  # rank
    assert cells[2:5] == ["SP-1", "RESIDENTIAL", "0.800"]
    assert cells[5] == "CONSUMPTION_DROP, TAMPER_EVENTS"
    assert "1,234.6 kWh" in cells[6]
    assert "370.37 EUR" in cells[7]
    assert cells[8] == "296.29 EUR"  # priority = 0.8 × 370.368
    assert cells[9:] == ["new", "2026-11-15", "1"]
    continuing = re.findall(r"<td[^>]*>(.*?)</td>", alert_row(page, "D-SHAPE"))
    assert continuing[9:] == ["continuing", "2026-11-12", "4"]


def test_daily_chart_leaves_days_without_data_as_gaps(page: str) -> None:
    # THEN the W line of the device whose last 3 days of W have no data (one of them partial)
    # is null there (a gap, not a zero), and null over B, which has its own line
    daily = section(page, HOSTILE_ID)
    window_line = json.loads(re.search(r'"y":(\[[^\]]*\]),"name":"import in W"', daily).group(1))
    assert window_line == [None] * 28 + [10.0] * 11 + [None] * 3
    expected_line = json.loads(
        re.search(r'"y":(\[[^\]]*\]),"name":"expected in W"', daily).group(1)
    )
    assert expected_line == [9.5] * 14


def test_findings_in_words_with_metric_and_threshold(page: str) -> None:
    text = section(page, "D-DROP")
    assert (
        escape(
            "Consumption in the window is 42 % of the expected level, the baseline mean times "
            "its class's drift (CONSUMPTION_DROP fires at ≤ 65 %)."
        )
        in text
    )
    assert "tamper counter went up 3 times in the window" in text
    # the strongest rule first, in the config's order
    assert text.index("TAMPER_EVENTS fires") < text.index("CONSUMPTION_DROP fires")
    assert "correlates 0.10 with the baseline" in section(page, "D-SHAPE")
    # a finding a confounder explains says so, and that it is not in the score
    assert "Explained by BASE_LOAD_HELD: not counted in the score." in section(page, "D-SHAPE")
    assert "Explained by" not in text


def test_every_rule_has_its_sentence_with_the_configured_threshold() -> None:
    # GIVEN each rule of the job, and a config with its own threshold for one of them
    config = {
        **RULES_CONFIG,
        "CONSUMPTION_DROP": {**RULES_CONFIG["CONSUMPTION_DROP"], "max_ratio": 0.7},
    }
    for name in rules.RULES:
        # WHEN its finding is put in words THEN the sentence names it, not the fallback
        sentence = finding_text(name, 0.5, config)
        assert name in sentence, sentence
        assert "metric" not in sentence, sentence
    assert "fires at ≤ 70 %" in finding_text("CONSUMPTION_DROP", 0.5, config)
    assert finding_text("NEW_RULE", 1.5, config) == "NEW_RULE fired (metric 1.500)."


def test_text_from_the_data_is_escaped(page: str) -> None:
    # THEN no markup from a device id or a cleared device reaches the page unescaped
    assert HOSTILE_ID not in page
    assert "<b>gone</b>" not in page
    assert f"<code>{escape(HOSTILE_ID)}</code>" in page
    assert 'data-device-id="&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;"' in page


def test_run_summary_history_and_cleared_devices(page: str) -> None:
    assert "The 4 highest-ranked of the run's 5 alerts." in page
    assert "Run date <strong>2026-11-15</strong>" in page
    assert "2026-11-02 to 2026-11-15" in page
    assert "2026-10-05\nto 2026-11-01" in page
    assert re.search(
        r'id="history-new">3<.*id="history-continuing">1<.*id="history-cleared">2<', page, re.DOTALL
    )
    cleared = page[page.index('<ul class="cleared">') :]
    assert re.findall(r"<li><code>(.*?)</code></li>", cleared[: cleared.index("</ul>")]) == [
        "D-GONE",
        "&lt;b&gt;gone&lt;/b&gt;",
    ]
    assert (
        "<td>measurements</td>"
        + "".join(f'<td class="number">{n}</td>' for n in ("12,345", "12,000", "45", "100", "200"))
        in page
    )


def test_page_is_offline_and_names_its_command(page: str) -> None:
    # THEN plotly.js is inlined once, nothing is fetched, and the page says what made it
    assert page.count(plotly.offline.get_plotlyjs()[:200]) == 1
    assert not re.search(r"""<(script|link|img)[^>]+(src|href)=["']?(https?:)?//""", page)
    assert f"<code>{escape(COMMAND)}</code>" in page


# --- The page in headless Chromium ---


@pytest.fixture(scope="module")
def page_file(page: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "alerts.html"
    path.write_text(page, encoding="utf-8")
    return path


def test_chromium_draws_every_chart_without_script_errors(page_file: Path) -> None:
    # WHEN Chromium opens the page THEN every device with evidence has its two charts drawn
    rendered = assert_report_rendered(rendered_dom(page_file), ["D-DROP", "D-SHAPE", HOSTILE_ID])
    assert rendered.sections.keys() == {"D-DROP", "D-SHAPE", HOSTILE_ID}
    # and a screenshot is taken
    png = screenshot(page_file, page_file.with_suffix(".png"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("broken_plotly", "reason"),
    [
        ("", "script errors in the page"),  # plotly.js missing: Plotly is not defined
        (
            "window.Plotly = {newPlot: function () {}};",
            "charts not drawn",
        ),  # draws nothing, no error
    ],
)
def test_a_page_whose_charts_do_not_draw_fails(
    page: str, tmp_path: Path, broken_plotly: str, reason: str
) -> None:
    # GIVEN the same page with plotly.js removed, or replaced by one that draws nothing
    broken = tmp_path / "alerts.html"
    broken.write_text(
        page.replace(plotly.offline.get_plotlyjs(), broken_plotly, 1), encoding="utf-8"
    )
    # WHEN Chromium opens it THEN the check fails
    dom = rendered_dom(broken)
    with pytest.raises(AssertionError, match=reason):
        assert_report_rendered(dom, ["D-DROP", "D-SHAPE", HOSTILE_ID])
    if not broken_plotly:
        assert "Plotly is not defined" in json.dumps(parse_rendered(dom).script_errors)


# --- The report of a real run of the job on tests/test_data ---


def test_report_of_a_real_run_draws_every_alerted_device(
    spark: SparkSession, sample_published: Path, tmp_path: Path
) -> None:
    # GIVEN the job's run on the sample WHEN Chromium opens its published alerts.html
    page = sample_published / "reports" / f"run_date={RUN_DATE.isoformat()}" / "alerts.html"
    assert page.is_file(), f"the run published no {page}"
    alerted = sorted(
        row["device_id"]
        for row in read_published(spark, str(sample_published), "alerts", RUN_DATE).collect()
    )
    evidence = (
        read_published(spark, str(sample_published), "evidence", RUN_DATE)
        .select("device_id")
        .distinct()
        .collect()
    )
    # THEN every alerted device of the sample (fewer than evidence_max_devices) has evidence,
    assert sorted(row["device_id"] for row in evidence) == alerted
    # its section with both charts drawn, and the page had no script error
    rendered = assert_report_rendered(rendered_dom(page), alerted)
    assert sorted(rendered.sections) == alerted
    assert "jobs/datalake_job.py --config" in page.read_text(encoding="utf-8")
    png = screenshot(page, tmp_path / "alert_report.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
