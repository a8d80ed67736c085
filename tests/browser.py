"""Open an HTML page in Debian's headless Chromium (installed by ``make install``): its DOM
after the scripts ran, a screenshot, and what a drawn plotly chart leaves in that DOM."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Virtual time lets the page's scripts (plotly drawing every chart) finish before the dump.
VIRTUAL_TIME_BUDGET_MS = 30_000
CHROMIUM_TIMEOUT_SECONDS = 180
SCREENSHOT_SIZE = (1400, 2200)
VOID_ELEMENTS = frozenset(
    {
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "source",
        "track",
        "wbr",
    }
)


def chromium(page: Path, *action: str, window_size: tuple[int, int] = SCREENSHOT_SIZE) -> str:
    """Run headless Chromium on ``page`` with ``action`` (``--dump-dom``, ``--screenshot=...``),
    offline-minded and with a fresh profile; its standard output. Fails when it fails."""
    assert page.is_file(), f"no page at {page}"
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        result = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}",
                f"--window-size={window_size[0]},{window_size[1]}",
                *action,
                page.resolve().as_uri(),
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=CHROMIUM_TIMEOUT_SECONDS,
        )
    assert result.returncode == 0, (
        f"chromium exited with {result.returncode}: {result.stderr[-2000:]}"
    )
    return result.stdout


def rendered_dom(page: Path) -> str:
    """The page's DOM, serialised after its scripts ran."""
    dom = chromium(page, "--dump-dom")
    assert "<html" in dom, "chromium dumped no DOM"
    return dom


def screenshot(page: Path, png: Path, window_size: tuple[int, int] = SCREENSHOT_SIZE) -> Path:
    """A PNG of the top of the page, ``window_size`` pixels."""
    png.parent.mkdir(parents=True, exist_ok=True)
    chromium(page, f"--screenshot={png.resolve()}", window_size=window_size)
    assert png.is_file(), f"chromium wrote no screenshot at {png}"
    assert png.stat().st_size > 0, f"chromium wrote no screenshot at {png}"
    return png


@dataclass
class Chart:
    """What a plotly chart div holds once plotly has drawn it."""

    plotted: bool = False  # plotly marked the div as its plot (class js-plotly-plot)
    main_svgs: int = 0
    traces: int = 0
    drawn_paths: int = 0  # paths with a non-empty outline inside a trace

    @property
    def drawn(self) -> bool:
        """Plotly drew it: its SVG, at least one trace, and a line or marker in a trace."""
        return self.plotted and self.main_svgs > 0 and self.traces > 0 and self.drawn_paths > 0


@dataclass
class RenderedPage:
    """The device sections of a rendered report (by device id, their charts by div id) and
    the script errors the page recorded."""

    sections: dict[str, dict[str, Chart]] = field(default_factory=dict)
    script_errors: list[str] = field(default_factory=list)


class _ReportParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = RenderedPage()
        self.stack: list[tuple[str, dict[str, str]]] = []

    def _enclosing(self, predicate: Callable[[dict[str, str]], bool]) -> dict[str, str] | None:
        return next((attrs for _, attrs in reversed(self.stack) if predicate(attrs)), None)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        classes = set(attributes.get("class", "").split())
        if tag == "section" and "data-device-id" in attributes:
            self.page.sections[attributes["data-device-id"]] = {}
        section = self._enclosing(lambda a: "data-device-id" in a)
        chart = self._enclosing(lambda a: "plotly-graph-div" in a.get("class", "").split())
        if section is not None:
            charts = self.page.sections[section["data-device-id"]]
            if "plotly-graph-div" in classes:
                charts[attributes.get("id", "")] = Chart(plotted="js-plotly-plot" in classes)
            elif chart is not None:
                drawn = charts[chart.get("id", "")]
                in_trace = (
                    self._enclosing(lambda a: "trace" in a.get("class", "").split()) is not None
                )
                drawn.main_svgs += tag == "svg" and "main-svg" in classes
                drawn.traces += tag == "g" and "trace" in classes
                drawn.drawn_paths += (
                    tag == "path" and in_trace and attributes.get("d", "") not in ("", "M0,0Z")
                )
        if tag not in VOID_ELEMENTS:
            self.stack.append((tag, attributes))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID_ELEMENTS:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, -1, -1):
            if self.stack[depth][0] == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        if (
            self.stack
            and self.stack[-1][0] == "li"
            and self._enclosing(lambda a: a.get("id") == "script-errors")
        ):
            self.page.script_errors.append(data)


def parse_rendered(dom: str) -> RenderedPage:
    """The device sections, their charts and the recorded script errors of a dumped DOM."""
    parser = _ReportParser()
    parser.feed(dom)
    parser.close()
    return parser.page


def assert_report_rendered(
    dom: str, device_ids: list[str], charts_per_device: int = 2
) -> RenderedPage:
    """Every device in ``device_ids`` has its section with ``charts_per_device`` charts, each
    drawn by plotly, and the page recorded no script error."""
    page = parse_rendered(dom)
    assert not page.script_errors, f"script errors in the page: {page.script_errors}"
    missing = [device for device in device_ids if device not in page.sections]
    assert not missing, f"no section for devices {missing}"
    for device in device_ids:
        charts = page.sections[device]
        assert len(charts) == charts_per_device, (
            f"device {device}: {len(charts)} charts, not {charts_per_device}"
        )
        undrawn = [name for name, chart in charts.items() if not chart.drawn]
        assert not undrawn, f"device {device}: charts not drawn: {undrawn} ({charts})"
    return page


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Screenshot an HTML page in headless Chromium.")
    parser.add_argument("page", type=Path, help="the HTML file, e.g. a published alerts.html")
    parser.add_argument("png", type=Path, help="where to write the PNG")
    parser.add_argument("--width", type=int, default=SCREENSHOT_SIZE[0])
    parser.add_argument("--height", type=int, default=SCREENSHOT_SIZE[1])
    arguments = parser.parse_args()
    try:
        print(screenshot(arguments.page, arguments.png, (arguments.width, arguments.height)))
    except AssertionError as error:
        raise SystemExit(f"browser: {error}") from None
