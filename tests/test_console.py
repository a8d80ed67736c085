"""What a person sees running the job at a terminal: each event once, the config as its
differences from the defaults, a progress line updated in place, and the summary tables.

The job runs under a pseudo-terminal (``script``), as ``make run`` does in a shell; the
piped case (no progress at all) is checked on the runs of tests/test_job_logging.py."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import MAX_SAMPLE_SPARK_JOBS, REPO, RUN_DATE, in_background, write_job_config

from dependencies.spark import ADAPTIVE_EXECUTION


@dataclass(frozen=True)
class TerminalRun:
    """A run of the job at a pseudo-terminal: its directory, exit code and what it showed."""

    directory: Path
    returncode: int
    shown: str


def run_at_a_terminal(directory: Path) -> TerminalRun:
    """Run the job (DEBUG=1, the sample, a config that differs from the defaults in its
    output path and Spark partitions) under a pseudo-terminal (``script``), in ``directory``."""
    config = write_job_config(directory)
    # Adaptive execution as a run of the bundled config has it: decided by the input's size.
    settings = json.loads(config.read_text(encoding="utf-8"))
    del settings["spark"][ADAPTIVE_EXECUTION]
    config.write_text(json.dumps(settings), encoding="utf-8")
    job = [
        sys.executable,
        str(REPO / "jobs" / "datalake_job.py"),
        "--config",
        str(config),
        "--run-date",
        RUN_DATE,
    ]
    finished = subprocess.run(
        ["script", "-qfec", shlex.join(job), "/dev/null"],
        check=False,
        capture_output=True,
        timeout=900,
        cwd=directory,
        env={**os.environ, "DEBUG": "1", "PYSPARK_PYTHON": sys.executable},
    )
    # bytes: text mode would turn \r into \n
    return TerminalRun(directory, finished.returncode, finished.stdout.decode("utf-8", "replace"))


@in_background
def run_in_the_background(request: pytest.FixtureRequest, pool: ThreadPoolExecutor) -> Future:
    directory = request.getfixturevalue("tmp_path_factory").mktemp("console")
    return pool.submit(run_at_a_terminal, directory)


def test_at_a_terminal_a_run_shows_progress_each_event_once_and_the_summary(
    background_runs: dict[str, Future],
) -> None:
    # GIVEN a config that differs from the defaults in its output path (and Spark partitions)
    # WHEN the job runs at a pseudo-terminal
    run = background_runs[__name__].result()
    shown, tmp_path = run.shown, run.directory
    assert run.returncode == 0, shown[-3000:]

    # THEN a status line named the job's stages and the Spark tasks, redrawn in place
    steps = re.findall(r"\rdatalake_job \d+:\d\d \| (\w+) \d+:\d\d", shown)
    assert {"usage", "detect", "publish"} <= set(steps)
    assert re.search(r"\| Spark tasks \d+/\d+ \(stages? \d+", shown)
    # AND each event is on the terminal once: no second copy through log4j's console
    assert shown.count("run started") == 1
    assert shown.count("run finished with exit code 0") == 1
    assert " INFO datalake: {" not in shown
    # AND the config shows as what differs from the defaults, not in full
    started = next(line for line in shown.splitlines() if "run started" in line)
    assert f'"output.path": "{tmp_path / "output"}"' in started
    assert "UNINSTALLED_CONSUMPTION" not in started
    # AND adaptive execution is off for an input this small: a run starts few Spark jobs
    assert shown.count("adaptive execution off for this input's size") == 1
    report = next((tmp_path / "output" / "reports").glob("run_date=*/report.json"))
    assert sum(json.loads(report.read_text())["spark_jobs"].values()) <= MAX_SAMPLE_SPARK_JOBS
    # AND the summary ends the output as aligned tables
    summary = shown[shown.index("\ndatalake run ") :].replace("\r", "")
    assert re.search(r"\n  table +read +used +rejected +deduplicated +outside_window\n", summary)
    assert re.search(r"\n  measurements +40,400 +", summary)
    assert re.search(r"\n  rule +findings\n  UNINSTALLED_CONSUMPTION +1\n", summary)
    assert re.search(
        r"\n  rank +device_id +score +estimated_value +status +rules\n"
        r"     1  G01 +1\.000 +33\.00  new +UNINSTALLED_CONSUMPTION\n",
        summary,
    )
    assert re.search(
        rf"\n  report_html +file +{re.escape(str(tmp_path))}/output/reports/"
        r"run_date=\S+/alerts\.html\n",
        summary,
    )
    assert re.search(
        rf"\n  output +format +path\n  alerts +delta +{re.escape(str(tmp_path))}/output/alerts\n",
        summary,
    )
    # AND the output path holds the published tables and nothing else
    assert sorted(entry.name for entry in (tmp_path / "output").iterdir()) == [
        "alerts",
        "evidence",
        "findings",
        "rejects",
        "reports",
    ]
