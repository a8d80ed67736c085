"""The benchmark: the job on 1,000, 10,000 and 30,000 devices (42 days at 15 minutes: about
4, 40 and 120 million readings) against the floor of its work, on local Spark with the
default config.

``make bench`` (or ``python -m jobs.tools.bench``) generates each dataset once (cached under
``$DATALAKE_BENCH_DIR`` or ``.bench/``), runs the job and then the floor (read the
measurements and sort them by component and time), each in its own process, polling the
peak memory of the Python driver and of the JVM; then the daily case at 10,000 and 30,000
devices (:mod:`jobs.tools.daily`: a run reusing the stored ledger against a full run). It
writes ``docs/benchmark.md`` and ``docs/scaling.md`` (:mod:`jobs.tools.scaling`: the
figures projected to a fleet). ``--daily`` measures only the daily case; ``--render`` writes
the reports from the stored figures. ``--format csv`` also prints every stored run as a CSV row
on stdout (the messages go to stderr), for a spreadsheet or another tool.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable
from contextlib import redirect_stdout
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from dependencies.progress import Progress, echo
from jobs.tools.common import (
    BUNDLED_CONFIG,
    PYTHON,
    REPO,
    bench_dir,
    directory_bytes,
    ensure_dataset,
    read_report,
    run_job,
    run_measured,
    write_job_config,
)
from jobs.tools.daily import bench_daily, daily_section, daily_targets
from jobs.tools.scaling import render_scaling

SIZES = (1000, 10000, 30000)
# The daily case (a stored ledger, jobs/tools/daily.py): its sizes and stored figures' names.
DAILY_SIZES = (10000, 30000)
DAILY_PREFIX = "daily"
SCALING_REPORT = REPO / "docs" / "scaling.md"
SEED = 7
RUN_DATE = "2026-11-15"
REPORT = REPO / "docs" / "benchmark.md"
COMMAND = "make bench"
# The targets.
MAX_GROWTH = 35.0
MAX_FLOOR_RATIO = 3.0
FLOOR_RATIO_DEVICES = 10000
MAX_DRIVER_GROWTH = 1.25
# The alerts' evidence table and HTML page (issue 12): at most this share added to the job.
MAX_EVIDENCE_SHARE = 0.10
# Their stage in the run report: publish, which also stages the alerts, findings and rejects
# (an upper bound on what the evidence table and the page add).
EVIDENCE_STAGES = ("publish",)
GIB = 1024**3
# --format csv: a row per process run; the runs of a daily case each set against its full run.
CSV_COLUMNS = (
    "case",
    "devices",
    "run",
    "exit_code",
    "seconds",
    "versus",
    "ratio",
    "readings",
    "spark_jobs",
    "driver_peak_gib",
    "jvm_peak_gib",
    "measured_at",
    "commit",
    "load_average",
)
DAILY_VERSUS = {"daily": "full", "late": "late_full", "fleet": "fleet_full"}


def bench_size(devices: int, on_step: Callable[[str], None] = lambda part: None) -> dict[str, Any]:
    """Generate (once), run the job, run the floor; return the measurements. ``on_step``
    hears which part runs (the progress line)."""
    on_step("data")
    data = ensure_dataset(devices, SEED, RUN_DATE)
    work = bench_dir() / "bench" / f"devices{devices}"
    shutil.rmtree(work, ignore_errors=True)
    config = write_job_config(work / "job_config.json", data, work / "output")
    echo(f"{devices} devices: job")
    on_step("job")
    job = run_job(config, RUN_DATE, work / "job.log")
    result: dict[str, Any] = {
        "devices": devices,
        "input_bytes": directory_bytes(data / "measurements"),
        "job": job.__dict__,
    }
    if job.exit_code == 0:
        report = read_report(work / "output", RUN_DATE)
        result["readings"] = report["counts"]["measurements"]["read"]
        result["job_stages"] = report["durations_seconds"]
        result["spark_jobs"] = report.get("spark_jobs", {})
    echo(f"  {job.seconds:.0f} s, exit {job.exit_code}; floor")
    on_step("floor")
    floor = run_measured(
        [PYTHON, "-m", "jobs.tools.floor", "--config", str(config)], work / "floor.log"
    )
    result["floor"] = floor.__dict__
    echo(f"  floor {floor.seconds:.0f} s, exit {floor.exit_code}")
    shutil.rmtree(work / "output", ignore_errors=True)
    return result


def _gib(value: int) -> str:
    return f"{value / GIB:.2f}"


def figures_csv(results: list[dict[str, Any]], daily: list[dict[str, Any]]) -> str:
    """Every stored run as a CSV row (``CSV_COLUMNS``, then ``stage_<name>_s`` for each stage
    a run report timed): a size's job and floor (the job's ``ratio`` versus its floor), and
    each run of a daily case (a daily, late-file or fleet-change run versus its full run)."""
    rows = []

    def add(
        case: str,
        r: dict[str, Any],
        run: str,
        stats: dict[str, Any],
        figures: dict[str, Any],
        versus: str,
    ) -> None:
        reference = (r["runs"] if case == "daily" else r).get(versus, {}).get("seconds")
        rows.append(
            {
                "case": case,
                "devices": r["devices"],
                "run": run,
                "exit_code": stats["exit_code"],
                "seconds": stats["seconds"],
                "versus": versus if reference else "",
                "ratio": f"{stats['seconds'] / reference:.3f}" if reference else "",
                "readings": figures.get("readings", ""),
                "spark_jobs": sum(figures["spark_jobs"].values())
                if figures.get("spark_jobs")
                else "",
                "driver_peak_gib": _gib(stats["driver_peak_rss"]),
                "jvm_peak_gib": _gib(stats["jvm_peak_rss"]),
                "measured_at": r["measured_at"],
                "commit": r["commit"],
                "load_average": r["load_average"],
                **{f"stage_{k}_s": v for k, v in figures.get("stages", {}).items()},
            }
        )

    for r in results:
        job_figures = {
            "readings": r.get("readings"),
            "spark_jobs": r.get("spark_jobs"),
            "stages": r.get("job_stages", {}),
        }
        add("size", r, "job", r["job"], job_figures, "floor")
        add("size", r, "floor", r["floor"], {}, "")
    for r in daily:
        for run, stats in r["runs"].items():
            add("daily", r, run, stats, r.get(run, {}), DAILY_VERSUS.get(run, ""))
    stages = sorted({key for row in rows for key in row} - set(CSV_COLUMNS))
    text = io.StringIO()
    writer = csv.DictWriter(text, [*CSV_COLUMNS, *stages], restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def render(
    results: list[dict[str, Any]], machine: dict[str, Any], daily: list[dict[str, Any]] = ()
) -> str:
    """The report in Markdown: the table, the ratios, the daily case and the targets."""
    lines = [
        "# Benchmark: the job against the floor of its work",
        "",
        f"Generated by `{COMMAND}` ({machine['generated_at']}); do not edit by hand.",
        "",
        (
            f"Machine: {machine['cores']} cores, {machine['memory_gib']:.1f} GiB memory, "
            f"{machine['system']}."
        ),
        "Other work may share the machine (the load average when each size was measured is in its",
        "row): the floor runs right after the job so that both see the same conditions. A size run",
        "alone (`python -m jobs.tools.bench --devices N`) keeps the other sizes' last figures;",
        "`--render` writes the report again from the stored figures without measuring.",
        "",
        (
            "Each dataset is `jobs/tools/generate_data.py` with the given number of devices, seed "
            f"{SEED}, run date {RUN_DATE} (42 days of 15-minute readings), Parquet partitioned by"
        ),
        (
            "`measured_date`. The job runs as `DEBUG=1 python jobs/datalake_job.py --config C "
            "--run-date D` with the default settings of `configs/datalake_config.json` "
            f"(`spark`: `{json.dumps(machine['spark_settings'])}`). "
            "The floor (`jobs/tools/floor.py`) reads the"
        ),
        "measurements and sorts them by component and time in the same conditions. Times are",
        "wall-clock seconds of each process, start to exit (JVM start included).",
        "",
        (
            "| devices | readings | input (MiB) | job (s) | readings/s | floor (s) | job / floor "
            "| driver peak RSS (GiB) | JVM peak RSS (GiB) | floor JVM peak (GiB) "
            "| measured (commit, load) |"
        ),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        job, floor = r["job"], r["floor"]
        ok = job["exit_code"] == 0
        readings = r.get("readings")
        when = f"{r['measured_at']} ({r['commit']}, load {r['load_average']})"
        lines.append(
            f"| {r['devices']:,} | {readings:,} | {r['input_bytes'] / 2**20:.0f} | "
            f"{job['seconds']:.0f} | {readings / job['seconds']:,.0f} | {floor['seconds']:.0f} | "
            f"{job['seconds'] / floor['seconds']:.2f} | {_gib(job['driver_peak_rss'])} | "
            f"{_gib(job['jvm_peak_rss'])} | {_gib(floor['jvm_peak_rss'])} | {when} |"
            if ok
            else (
                f"| {r['devices']:,} | — | {r['input_bytes'] / 2**20:.0f} | "
                f"failed (exit {job['exit_code']}) "
                f"after {job['seconds']:.0f} s | — | {floor['seconds']:.0f} | — | "
                f"{_gib(job['driver_peak_rss'])} | {_gib(job['jvm_peak_rss'])} | "
                f"{_gib(floor['jvm_peak_rss'])} "
                f"| {when} |"
            )
        )
    lines += ["", "Job stages (seconds, from the run report):", ""]
    for r in results:
        if "job_stages" in r:
            lines.append(f"- {r['devices']:,} devices: `{json.dumps(r['job_stages'])}`")
    lines += ["", "Spark jobs started per stage (from the run report):", ""]
    for r in results:
        if r.get("spark_jobs"):
            jobs = r["spark_jobs"]
            lines.append(
                f"- {r['devices']:,} devices: {sum(jobs.values())} in all, `{json.dumps(jobs)}`"
            )
    lines += ["", *daily_section(daily)]
    lines += ["", "## Targets", "", "| target | measured | met |", "|---|---|---|"]
    lines += [
        f"| {t} | {m} | {v} |" for t, m, v in targets(results) + daily_targets(daily, DAILY_SIZES)
    ]
    lines.append("")
    return "\n".join(lines)


def targets(results: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """Each target of the issue with what was measured and whether it is met."""
    done = [r for r in results if r["job"]["exit_code"] == 0]
    rows = []
    if len(done) >= 2:
        small, large = done[0], done[-1]
        growth = large["job"]["seconds"] / small["job"]["seconds"]
        scale = large["readings"] / small["readings"]
        rows.append(
            (
                (
                    f"time grows linearly: largest / smallest ≤ {MAX_GROWTH:.0f}× (for "
                    f"{scale:.0f}× the readings)"
                ),
                f"{growth:.1f}×",
                _yes(growth <= MAX_GROWTH),
            )
        )
        driver = large["job"]["driver_peak_rss"] / small["job"]["driver_peak_rss"]
        rows.append(
            (
                "the driver's memory does not grow with the input",
                (
                    f"{_gib(small['job']['driver_peak_rss'])} → "
                    f"{_gib(large['job']['driver_peak_rss'])} GiB "
                    f"({driver:.2f}×)"
                ),
                _yes(driver <= MAX_DRIVER_GROWTH),
            )
        )
    at = next((r for r in done if r["devices"] == FLOOR_RATIO_DEVICES), None)
    if at:
        ratio = at["job"]["seconds"] / at["floor"]["seconds"]
        rows.append(
            (
                f"job ≤ {MAX_FLOOR_RATIO:.0f}× its floor at {FLOOR_RATIO_DEVICES:,} devices",
                f"{ratio:.2f}×",
                _yes(ratio <= MAX_FLOOR_RATIO),
            )
        )
    rows += evidence_targets(done)
    if not results:
        return rows
    largest = max(results, key=lambda r: r["devices"])
    rows.append(
        (
            (
                f"completes on the largest input ({largest['devices']:,} devices) "
                "with the default settings"
            ),
            f"exit code {largest['job']['exit_code']} after {largest['job']['seconds']:.0f} s",
            _yes(largest["job"]["exit_code"] == 0),
        )
    )
    return rows


def evidence_targets(done: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """The time the evidence table and the HTML page add (at most their stage in the run
    report, ``EVIDENCE_STAGES``) against the rest of the job, at ``FLOOR_RATIO_DEVICES``
    devices."""
    at = next((r for r in done if r["devices"] == FLOOR_RATIO_DEVICES), None)
    if at is None or not all(stage in at["job_stages"] for stage in EVIDENCE_STAGES):
        return []
    added = sum(at["job_stages"][stage] for stage in EVIDENCE_STAGES)
    share = added / (at["job"]["seconds"] - added)
    return [
        (
            (
                f"the evidence table and alerts.html add ≤ {MAX_EVIDENCE_SHARE:.0%} "
                f"at {FLOOR_RATIO_DEVICES:,} devices"
            ),
            f"{added:.1f} s of {at['job']['seconds']:.0f} s: +{share:.1%}",
            _yes(share <= MAX_EVIDENCE_SHARE),
        )
    ]


def _yes(condition: bool) -> str:
    return "yes" if condition else "**no**"


def describe_machine() -> dict[str, Any]:
    """The machine and settings the figures are measured with (and the time of the report)."""
    return {
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "memory_gib": psutil.virtual_memory().total / GIB,
        "system": f"{platform.system()} {platform.machine()}, Python {platform.python_version()}",
        "load_average": ", ".join(f"{v:.1f}" for v in os.getloadavg()),
        "spark_settings": json.loads(BUNDLED_CONFIG.read_text(encoding="utf-8"))["spark"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Benchmark the job against its floor, and its daily runs."
    )
    parser.add_argument(
        "--devices",
        type=int,
        nargs="+",
        help=f"the sizes to measure (default: {SIZES}, and the daily case at {DAILY_SIZES})",
    )
    parser.add_argument(
        "--daily", action="store_true", help="measure only the daily case (a stored ledger)"
    )
    parser.add_argument("--report", type=Path, default=REPORT)
    parser.add_argument("--scaling-report", type=Path, default=SCALING_REPORT)
    parser.add_argument(
        "--render", action="store_true", help="only write the reports from stored figures"
    )
    parser.add_argument(
        "--format",
        choices=("markdown", "csv"),
        default="markdown",
        help="csv: also print every stored run as CSV on stdout (messages go to stderr)",
    )
    args = parser.parse_args(argv)
    if args.format == "csv":
        with redirect_stdout(sys.stderr):
            exit_code = measure(args)
        results, daily = stored_figures(results_dir())
        sys.stdout.write(figures_csv(results, daily))
        return exit_code
    return measure(args)


def measure(args: argparse.Namespace) -> int:
    """Measure the cases ``args`` asks for, storing each one's figures, and write the reports;
    the exit code is 1 when a case failed."""
    machine = describe_machine()
    stored = results_dir()
    stored.mkdir(parents=True, exist_ok=True)
    exit_code = 0
    if args.render:
        sizes, daily_sizes = [], []
    elif args.daily:
        sizes, daily_sizes = [], sorted(args.devices or DAILY_SIZES)
    else:
        sizes, daily_sizes = (
            sorted(args.devices or SIZES),
            ([] if args.devices else list(DAILY_SIZES)),
        )
    cases = [("size", devices) for devices in sizes] + [
        ("daily", devices) for devices in daily_sizes
    ]
    with Progress(
        "bench"
    ) as progress:  # at a terminal: the size and part running, and for how long
        for index, (case, devices) in enumerate(cases, 1):
            label = f"{case} {index}/{len(cases)}: {devices:,} devices"

            def on_step(part: str, label: str = label) -> None:
                progress.step(f"{label}, {part}")

            measured = (
                bench_size(devices, on_step)
                if case == "size"
                else bench_daily(devices, SEED, RUN_DATE, on_step)
            )
            result = {
                **measured,
                "measured_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                "commit": current_commit(),
                "load_average": machine["load_average"],
                "cores": machine["cores"],
            }
            exit_code |= not succeeded(case, result)
            name = f"devices{devices}.json" if case == "size" else f"{DAILY_PREFIX}{devices}.json"
            (stored / name).write_text(json.dumps(result, indent=2), encoding="utf-8")
            write_reports(stored, args.report, args.scaling_report, machine)
    write_reports(stored, args.report, args.scaling_report, machine)
    return exit_code


def succeeded(case: str, result: dict[str, Any]) -> bool:
    """A size's job exited 0; a daily case ran every step and its outputs are identical."""
    if case == "size":
        return result["job"]["exit_code"] == 0
    return bool(
        result.get("same", {}).get("identical") and result.get("same_late", {}).get("identical")
    )


def write_reports(
    stored: Path, report: Path, scaling_report: Path, machine: dict[str, Any]
) -> None:
    """The reports of every size measured so far (a size run alone keeps the others' figures)."""
    results, daily = stored_figures(stored)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(render(results, machine, daily), encoding="utf-8")
    echo(f"wrote {report}")
    scaling_report.write_text(render_scaling(daily, machine, COMMAND), encoding="utf-8")
    echo(f"wrote {scaling_report}")


def results_dir() -> Path:
    """Where each measured case's figures are stored (one JSON file each)."""
    return bench_dir() / "bench" / "results"


def stored_figures(stored: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The stored figures of the sizes and of the daily cases, each by number of devices."""

    def read(pattern: str) -> list[dict[str, Any]]:
        figures = [json.loads(p.read_text(encoding="utf-8")) for p in stored.glob(pattern)]
        return sorted(figures, key=lambda r: r["devices"])

    return read("devices*.json"), read(f"{DAILY_PREFIX}*.json")


def current_commit() -> str:
    """The checkout's commit (with ``+`` when it has uncommitted changes)."""
    head = _git("rev-parse", "--short", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return (head or "unknown") + ("+" if dirty else "")


def _git(*args: str) -> str:
    """What ``git ARGS`` prints in the checkout, stripped (empty where git fails)."""
    done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
    return done.stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
