"""The benchmark's daily case: a run that reuses the readings' ledger stored by the previous
date's run, against a full run (``--full-refresh``) of the same date, and a late file.

For one dataset (the benchmark's, with its day partitions up to the run date):

1. one Parquet file of the late day (``LATE_DAY_BEFORE`` days before the run date) is moved
   aside (it arrives late, in step 5);
2. the previous date's run fills the store of the daily output (measured);
3. the daily run of the run date: one new day partition, the rest reused (measured);
4. the full run of the run date with ``--full-refresh`` into a second output that holds a
   copy of the previous date's published outputs (not its store), so both runs see the same
   history (measured); then the two outputs are compared (:mod:`jobs.tools.same_outputs`)
   and the two reports' counts, findings, alerts and history;
5. the late file is moved back (with a fresh modification time) and the run date runs again
   in both outputs: incrementally in the daily one, with ``--full-refresh`` in the other
   (both measured), and they are compared again;
6. a fleet change: ``FLEET_CHANGED_SHARE`` of the installed devices (at least one) get
   their install row changed (removed ``FLEET_CHANGE_DAY_BEFORE`` days before the run date,
   a meter that went on drawing after its removal), and the run date runs again in both
   outputs, incrementally and with ``--full-refresh`` (both measured); compared again.

The dataset is cached for the other cases: the file and the install table go back even when
a step fails, and what an interrupted run left aside goes back before anything else.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dependencies.progress import echo
from dependencies.tables import MEASURED_DATE
from jobs.ledger import STORE
from jobs.ledger.update import part_words
from jobs.tools import common
from jobs.tools.common import RunStats

# The late file's day: this many days before the run date (inside both runs' read range).
LATE_DAY_BEFORE = 12
FULL_REFRESH = ("--full-refresh",)
# The fleet change: this share of the installed devices (at least one) are removed this many
# days before the run date (inside both runs' read range), at this hour (UTC).
FLEET_CHANGED_SHARE = 0.001
FLEET_CHANGE_DAY_BEFORE = 9
FLEET_CHANGE_HOUR = 6
INSTALLS = "install_event"
# What of the two reports must agree (the rest: run ids, durations, paths, the ledger itself).
COMPARED_REPORT_KEYS = ("counts", "findings_by_rule", "alerts", "history")


def set_aside(data: Path, day: str, aside: Path) -> Path:
    """Move the first Parquet file of the input day ``day`` into ``aside``; return where it
    was."""
    files = sorted((data / "measurements" / f"{MEASURED_DATE}={day}").glob("*.parquet"))
    if not files:
        raise RuntimeError(f"no Parquet file in day {day} of {data}")
    aside.mkdir(parents=True, exist_ok=True)
    moved = aside / files[0].name
    (aside / "origin").write_text(str(files[0]), encoding="utf-8")
    shutil.move(files[0], moved)
    return files[0]


def put_back(aside: Path) -> Path | None:
    """Move the file set aside in ``aside`` back where it was, as a file arriving now (a
    fresh modification time); None when nothing is aside."""
    origin_note = aside / "origin"
    if not origin_note.exists():
        return None
    origin = Path(origin_note.read_text(encoding="utf-8"))
    moved = aside / origin.name
    if moved.exists():
        shutil.move(moved, origin)
        os.utime(origin)
    origin_note.unlink()
    return origin


def change_installs(data: Path, aside: Path, removed_at: datetime, share: float) -> list[str]:
    """Move the install table's files of ``data`` into ``aside`` and write the table again
    with ``share`` of its installed devices (at least one; every n-th by id, installed before
    ``removed_at``) removed at ``removed_at``; return those devices."""
    table_dir = data / INSTALLS
    files = sorted(table_dir.glob("*.parquet"))
    table = pa.concat_tables([pq.read_table(f) for f in files])
    removed = pa.scalar(removed_at, type=table.schema.field("removed_at").type)
    installed = pc.and_(pc.is_null(table["removed_at"]), pc.less(table["installed_at"], removed))
    candidates = sorted(set(table.filter(installed)["device_id"].to_pylist()))
    count = max(1, round(len(candidates) * share))
    devices = candidates[:: max(1, len(candidates) // count)][:count]
    chosen = pc.and_(installed, pc.is_in(table["device_id"], pa.array(devices)))
    changed = table.set_column(
        table.schema.get_field_index("removed_at"),
        "removed_at",
        pc.if_else(chosen, removed, table["removed_at"]),
    )
    kept = aside / INSTALLS
    kept.mkdir(parents=True, exist_ok=True)
    for file in files:
        shutil.move(file, kept / file.name)
    # INT96 and the table's Spark schema, as Spark wrote it: the job reads the same types.
    pq.write_table(
        changed, table_dir / "part-fleet-change.parquet", use_deprecated_int96_timestamps=True
    )
    return devices


def restore_installs(data: Path, aside: Path) -> bool:
    """Put the install table's files set aside in ``aside`` back in ``data`` (the changed
    table removed); False when none are aside."""
    kept = aside / INSTALLS
    if not kept.exists():
        return False
    for file in (data / INSTALLS).glob("*.parquet"):
        file.unlink()
    for file in kept.iterdir():
        shutil.move(file, data / INSTALLS / file.name)
    kept.rmdir()
    return True


def copy_published(source: Path, target: Path) -> None:
    """The published outputs of ``source`` (every table and report, not the ledger store)."""
    shutil.copytree(
        source, target, ignore=lambda directory, names: [STORE] if Path(directory) == source else []
    )


def report_differences(left: dict[str, Any], right: dict[str, Any]) -> list[str]:
    """The compared keys on which two run reports disagree."""
    return [key for key in COMPARED_REPORT_KEYS if left.get(key) != right.get(key)]


def compare_runs(
    config: Path,
    run_date: str,
    outputs: tuple[Path, Path],
    log: Path,
    count_days: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The daily and the full output of ``run_date``: their tables (in a reader process),
    their reports, and the readings of ``count_days`` of the input."""
    daily_output, full_output = outputs
    result_path = log.with_suffix(".json")
    stats = common.run_measured(
        [
            common.PYTHON,
            "-m",
            "jobs.tools.same_outputs",
            "--config",
            str(config),
            "--left",
            str(daily_output),
            "--right",
            str(full_output),
            "--run-date",
            run_date,
            "--count-days",
            *count_days,
            "--result",
            str(result_path),
        ],
        log,
    )
    if stats.exit_code != 0:
        return {
            "identical": False,
            "error": f"reader exit {stats.exit_code}: {stats.output_tail}",
            "day_readings": {},
        }
    found = json.loads(result_path.read_text(encoding="utf-8"))
    reports = report_differences(
        common.read_report(daily_output, run_date), common.read_report(full_output, run_date)
    )
    tables = {table: outcome for table, outcome in found["tables"].items() if not outcome["same"]}
    return {
        "identical": not tables and not reports,
        "different_tables": tables,
        "different_report_keys": reports,
        "rows": {table: outcome.get("rows") for table, outcome in found["tables"].items()},
        "day_readings": found["day_readings"],
    }


def _run(
    name: str, config: Path, run_date: str, work: Path, extra: tuple[str, ...] = ()
) -> dict[str, Any]:
    echo(f"  {name}: --run-date {run_date} {' '.join(extra)}".rstrip())
    stats: RunStats = common.run_job(config, run_date, work / f"{name}.log", extra)
    echo(f"    {stats.seconds:.0f} s, exit {stats.exit_code}")
    return stats.__dict__


def _report_figures(output: Path, run_date: str) -> dict[str, Any]:
    report = common.read_report(output, run_date)
    return {
        "readings": report["counts"]["measurements"]["read"],
        "components": report["counts"]["measuring_component"]["used"],
        "stages": report["durations_seconds"],
        "spark_jobs": report.get("spark_jobs", {}),
        "ledger": report.get("ledger"),
    }


def bench_daily(
    devices: int, seed: int, run_date: str, on_step: Callable[[str], None] = lambda part: None
) -> dict[str, Any]:
    """The daily case at ``devices`` devices of the dataset ``(devices, seed, run_date)``
    (steps in the module's docstring); returns its figures."""
    on_step("data")
    data = common.ensure_dataset(devices, seed, run_date)
    previous_date = _days_before(run_date, 1)
    late_day = _days_before(run_date, LATE_DAY_BEFORE)
    work = common.bench_dir() / "bench" / f"daily{devices}"
    aside = work / "aside"
    put_back(aside)  # what an interrupted run left aside first
    restore_installs(data, aside)
    for directory in ("daily", "full"):
        shutil.rmtree(work / directory, ignore_errors=True)
    daily_output, full_output = work / "daily" / "output", work / "full" / "output"
    daily_config = common.write_job_config(work / "daily" / "job_config.json", data, daily_output)
    full_config = common.write_job_config(work / "full" / "job_config.json", data, full_output)
    result: dict[str, Any] = {
        "devices": devices,
        "run_date": run_date,
        "late_day": late_day,
        "runs": {},
    }
    runs = result["runs"]
    echo(f"{devices} devices: the daily case (one file of {late_day} set aside)")
    set_aside(data, late_day, aside)
    try:
        on_step("previous date")
        runs["previous"] = _run("previous", daily_config, previous_date, work)
        if runs["previous"]["exit_code"] != 0:
            return result
        copy_published(daily_output, full_output)
        on_step("daily run")
        runs["daily"] = _run("daily", daily_config, run_date, work)
        on_step("full run")
        runs["full"] = _run("full", full_config, run_date, work, FULL_REFRESH)
        if runs["daily"]["exit_code"] != 0 or runs["full"]["exit_code"] != 0:
            return result
        result["daily"] = _report_figures(daily_output, run_date)
        result["full"] = _report_figures(full_output, run_date)
        result["store_bytes"] = common.directory_bytes(daily_output / STORE)
        on_step("compare")
        result["same"] = compare_runs(
            daily_config,
            run_date,
            (daily_output, full_output),
            work / "compare.log",
            (run_date, late_day),
        )
    finally:
        put_back(aside)

    def run_again(name: str, step: str, count_days: tuple[str, ...] = ()) -> None:
        """The run date again in both outputs, incrementally and with --full-refresh (as
        ``name`` and ``name_full``), then compared (``same_name``)."""
        on_step(step)
        runs[name] = _run(name, daily_config, run_date, work)
        on_step(f"{step}, full run")
        runs[f"{name}_full"] = _run(f"{name}_full", full_config, run_date, work, FULL_REFRESH)
        if runs[name]["exit_code"] == 0 and runs[f"{name}_full"]["exit_code"] == 0:
            result[name] = _report_figures(daily_output, run_date)
            on_step("compare")
            result[f"same_{name}"] = compare_runs(
                daily_config,
                run_date,
                (daily_output, full_output),
                work / f"compare_{name}.log",
                count_days,
            )

    run_again("late", "late file", (late_day,))
    removed_at = datetime.combine(
        date.fromisoformat(_days_before(run_date, FLEET_CHANGE_DAY_BEFORE)), datetime.min.time()
    ) + timedelta(hours=FLEET_CHANGE_HOUR)
    try:
        result["fleet_devices"] = change_installs(data, aside, removed_at, FLEET_CHANGED_SHARE)
        echo(f"  fleet change: {len(result['fleet_devices'])} devices removed at {removed_at}")
        run_again("fleet", "fleet change")
    finally:
        restore_installs(data, aside)
    echo(
        f"  identical: {result['same']['identical']} (daily), "
        f"{result.get('same_late', {}).get('identical')} (late file), "
        f"{result.get('same_fleet', {}).get('identical')} (fleet change)"
    )
    for directory in ("daily", "full"):
        shutil.rmtree(work / directory / "output", ignore_errors=True)
    return result


def _days_before(day: str, days: int) -> str:
    return (date.fromisoformat(day) - timedelta(days=days)).isoformat()


# -- the benchmark report's rows ------------------------------------------------------------
# The target: a daily run at most this share of a full run (aim: half of it).
MAX_DAILY_SHARE = 1 / 5
# ... and a run after a fleet change (FLEET_CHANGED_SHARE of the install rows) at most this.
MAX_FLEET_SHARE = 1 / 4


def daily_share(result: dict[str, Any], run: str = "daily", full: str = "full") -> float:
    """A run's seconds over its full run's."""
    return result["runs"][run]["seconds"] / result["runs"][full]["seconds"]


def measured(result: dict[str, Any]) -> bool:
    """Every run of a daily case ended well and its new day's readings were counted."""
    return (
        "late" in result
        and "same_late" in result
        and result["run_date"] in result.get("same", {}).get("day_readings", {})
    )


def share_words(share: float) -> str:
    """A share as a decimal, and as one part in so many when it is below one."""
    return f"{share:.2f} (1/{1 / share:.1f})" if share < 1 else f"{share:.2f}"


def _failed_step(result: dict[str, Any]) -> str:
    for name, stats in result["runs"].items():
        if stats["exit_code"] != 0:
            return f"{name} run failed (exit {stats['exit_code']})"
    return (
        "outputs not compared: "
        + (result.get("same", {}).get("error") or "the reader failed").splitlines()[0]
    )


def _compared(result: dict[str, Any]) -> tuple[str, ...]:
    """The comparisons a daily case made: daily, late file, and the fleet change if run."""
    return ("same", "same_late") + (("same_fleet",) if "fleet" in result["runs"] else ())


def _identical(result: dict[str, Any]) -> str:
    return ", ".join(
        "yes" if result.get(key, {}).get("identical") else "**no**" for key in _compared(result)
    )


def outside_stages(result: dict[str, Any], run: str, figures: str) -> float:
    """A run's seconds outside the stages its report times: the JVM's start and stop, the
    config, the small tables' reads before the first stage."""
    return result["runs"][run]["seconds"] - sum(result[figures]["stages"].values())


def _ledger_words(ledger: dict[str, Any] | None) -> str:
    if not ledger:
        return "no ledger section"
    parts = "; ".join(part_words(part) for part in ledger["computed"]) or "nothing"
    return f"{ledger['mode']}, {len(ledger['reused_days'])} days reused, computed: {parts}"


def daily_section(daily: list[dict[str, Any]]) -> list[str]:
    """The report's section on the daily case: a row per size, then each daily run's stages
    and ledger."""
    if not daily:
        return []
    lines = [
        "## The daily run: the readings' ledger kept between runs",
        "",
        (
            "`python -m jobs.tools.bench --daily --devices N` (part of `make bench`): the previous "
            "date's run fills the store under `<output>/_ledger/`; the daily run reads one new day "
            "and reuses the rest; the full run (`--full-refresh`) computes everything in a second "
            "output holding a copy of the previous date's published outputs (not its store); their "
            "alerts, findings, rejects, evidence and reports (counts, findings by rule, alerts, "
            "history) are compared. Then a late file (one Parquet file of an old day, set aside "
            "until then) arrives, and the date runs again in both outputs: incrementally, and with "
            "`--full-refresh`. Then a fleet change: "
            f"{FLEET_CHANGED_SHARE:.1%} of the installed devices are removed "
            f"{FLEET_CHANGE_DAY_BEFORE} days before the run date (their install rows changed), "
            "and the date runs again in both outputs. Times are wall-clock seconds of each "
            "process (JVM start included)."
        ),
        "",
        (
            "| devices | readings read | new day's readings | full run (s) | daily run (s) "
            "| daily / full | late file (s) | its full run (s) | late / full "
            "| fleet change (s) | its full run (s) | fleet / full "
            "| identical (daily, late, fleet) | store (MiB) | measured (commit, load) |"
        ),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for r in daily:
        when = f"{r['measured_at']} ({r['commit']}, load {r['load_average']})"
        if not measured(r):
            lines.append(f"| {r['devices']:,} | {_failed_step(r)} |{' |' * 12} {when} |")
            continue
        runs = r["runs"]
        new_day = r["same"]["day_readings"][r["run_date"]]
        lines.append(
            f"| {r['devices']:,} | {r['full']['readings']:,} | {new_day:,} | "
            f"{runs['full']['seconds']:.0f} | "
            f"{runs['daily']['seconds']:.0f} | {share_words(daily_share(r))} | "
            f"{runs['late']['seconds']:.0f} | "
            f"{runs['late_full']['seconds']:.0f} | "
            f"{share_words(daily_share(r, 'late', 'late_full'))} | "
            f"{_fleet_cells(r)} | "
            f"{_identical(r)} | {r['store_bytes'] / 2**20:.1f} | {when} |"
        )
    lines += [
        "",
        "Each daily run's stages (seconds, from its report; *outside* is the rest of the process:",
        "the JVM's start and stop, the config, the small tables) and what it did with the ledger:",
        "",
    ]
    for r in daily:
        if not measured(r):
            continue
        stages = {**r["daily"]["stages"], "outside": round(outside_stages(r, "daily", "daily"), 1)}
        jobs = r["daily"].get("spark_jobs", {})
        lines.append(
            f"- {r['devices']:,} devices, daily run: `{json.dumps(stages)}`; "
            + (f"{sum(jobs.values())} Spark jobs in its stages; " if jobs else "")
            + _ledger_words(r["daily"]["ledger"])
        )
        lines.append(
            f"- {r['devices']:,} devices, late file in {r['late_day']}: "
            f"{_ledger_words(r['late']['ledger'])}"
        )
        if "fleet" in r:
            lines.append(
                f"- {r['devices']:,} devices, fleet change "
                f"({len(r['fleet_devices'])} devices removed): "
                f"{_ledger_words(r['fleet']['ledger'])}"
            )
    return lines


def _fleet_cells(result: dict[str, Any]) -> str:
    """The fleet change's three cells: its run, its full run and their share (blank when the
    case was measured before it had one, or a run of it failed)."""
    if "fleet" not in result:
        return " | ".join([""] * 3)
    runs = result["runs"]
    return (
        f"{runs['fleet']['seconds']:.0f} | {runs['fleet_full']['seconds']:.0f} | "
        f"{share_words(daily_share(result, 'fleet', 'fleet_full'))}"
    )


def _share_target(
    target: str, result: dict[str, Any], run: str, full: str, limit: float
) -> tuple[str, str, str]:
    """A target row: ``run``'s seconds against its ``full`` run's, met when their share is at
    most ``limit``."""
    runs, share = result["runs"], daily_share(result, run, full)
    measured_words = (
        f"{runs[run]['seconds']:.0f} s of {runs[full]['seconds']:.0f} s: {share_words(share)}"
    )
    return (target, measured_words, "yes" if share <= limit else "**no**")


def daily_targets(
    daily: list[dict[str, Any]], sizes: tuple[int, ...]
) -> list[tuple[str, str, str]]:
    """The daily case's targets: a daily run at most ``MAX_DAILY_SHARE`` of a full run at each
    of ``sizes``, and its outputs identical to a full run's."""
    rows = []
    for devices in sizes:
        r = next((r for r in daily if r["devices"] == devices), None)
        if r is None:
            continue
        target = f"daily run ≤ 1/{1 / MAX_DAILY_SHARE:.0f} of the full run at {devices:,} devices"
        if "same" not in r:
            rows.append((target, _failed_step(r), "**no**"))
            continue
        rows.append(_share_target(target, r, "daily", "full", MAX_DAILY_SHARE))
        if "fleet" in r:
            fleet_target = (
                f"a run after {FLEET_CHANGED_SHARE:.1%} of the devices' install rows changed "
                f"≤ 1/{1 / MAX_FLEET_SHARE:.0f} of its full run at {devices:,} devices"
            )
            rows.append(_share_target(fleet_target, r, "fleet", "fleet_full", MAX_FLEET_SHARE))
    if daily:
        identical = [
            r for r in daily if all(r.get(key, {}).get("identical") for key in _compared(r))
        ]
        sizes_words = ", ".join(f"{r['devices']:,}" for r in daily)
        rows.append(
            (
                "daily outputs identical to a full run (and after a late file and a fleet change)",
                f"{len(identical)} of {len(daily)} sizes ({sizes_words} devices)",
                "yes" if len(identical) == len(daily) else "**no**",
            )
        )
    return rows
