"""What the quality run and the benchmark share: where generated data is cached, how a
dataset is generated once, and how one Spark process is run and measured from outside."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from dependencies.progress import echo
from jobs.tools.generate_data import COMPLETE_MARKER

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
GENERATOR = REPO / "jobs" / "tools" / "generate_data.py"
JOB = REPO / "jobs" / "datalake_job.py"
BUNDLED_CONFIG = REPO / "configs" / "datalake_config.json"
BENCH_DIR_VARIABLE = "DATALAKE_BENCH_DIR"
POLL_SECONDS = 0.2


def bench_dir() -> Path:
    """Where generated datasets and run outputs live: ``$DATALAKE_BENCH_DIR``, else the
    git-ignored ``.bench/`` of the checkout."""
    return Path(os.environ.get(BENCH_DIR_VARIABLE) or REPO / ".bench")


def generator_version() -> str:
    """A short hash of the generator's source: cached data is regenerated when it changes."""
    return hashlib.sha256(GENERATOR.read_bytes()).hexdigest()[:10]


def spark_environment() -> dict[str, str]:
    """The environment of a local Spark run (DEBUG=1) with this interpreter on both sides."""
    return {**os.environ, "DEBUG": "1", "PYSPARK_PYTHON": PYTHON, "PYSPARK_DRIVER_PYTHON": PYTHON}


@dataclass(frozen=True)
class RunStats:
    """One process run: exit code, wall seconds, peak RSS (bytes) of the Python driver and
    of the JVM(s) it started, and the tail of its output."""

    exit_code: int
    seconds: float
    driver_peak_rss: int
    jvm_peak_rss: int
    output_tail: str


def run_measured(command: list[str], log_path: Path) -> RunStats:
    """Run ``command`` with Spark's local environment, polling the process tree's memory."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            command, cwd=REPO, env=spark_environment(), stdout=log, stderr=subprocess.STDOUT
        )
        root = psutil.Process(process.pid)
        driver_peak = jvm_peak = 0
        while process.poll() is None:
            try:
                driver_peak = max(driver_peak, root.memory_info().rss)
                jvm = [p for p in root.children(recursive=True) if p.name().startswith("java")]
                jvm_peak = max(jvm_peak, sum(p.memory_info().rss for p in jvm))
            except psutil.Error:
                pass  # a process ended between listing and reading it
            time.sleep(POLL_SECONDS)
    seconds = time.monotonic() - started
    tail = "\n".join(log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-15:])
    return RunStats(process.returncode, round(seconds, 1), driver_peak, jvm_peak, tail)


def ensure_dataset(
    devices: int, seed: int, run_date: str, extra_args: tuple[str, ...] = ()
) -> Path:
    """The generated dataset for these settings, generated once (Parquet, cached under
    :func:`bench_dir`; a change of the generator's code makes a new one)."""
    suffix = (
        hashlib.sha256(" ".join(extra_args).encode()).hexdigest()[:6] if extra_args else "default"
    )
    path = (
        bench_dir()
        / "data"
        / f"devices{devices}-seed{seed}-{run_date}-{suffix}-{generator_version()}"
    )
    if (path / COMPLETE_MARKER).exists():
        return path
    shutil.rmtree(path, ignore_errors=True)
    command = [
        PYTHON,
        str(GENERATOR),
        "--config",
        str(BUNDLED_CONFIG),
        "--devices",
        str(devices),
        "--seed",
        str(seed),
        "--run-date",
        run_date,
        "--output",
        str(path),
        "--format",
        "parquet",
        *extra_args,
    ]
    echo(f"generating {devices} devices into {path}")
    stats = run_measured(command, path.parent / f"{path.name}.generate.log")
    if stats.exit_code != 0:
        raise RuntimeError(f"generator failed ({stats.exit_code}):\n{stats.output_tail}")
    echo(f"  generated in {stats.seconds:.0f} s")
    return path


def write_job_config(
    path: Path,
    input_path: Path,
    output_path: Path,
    rules: dict[str, dict[str, float]] | None = None,
) -> Path:
    """The smallest job config: input and output (and ``rules`` parameters to change, if
    any); every other setting is the bundled default."""
    config: dict = {
        "input": {"path": str(input_path), "format": "parquet"},
        "output": {"path": str(output_path)},
    }
    if rules:
        config["rules"] = rules
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return path


def run_job(
    config_path: Path, run_date: str, log_path: Path, extra_args: tuple[str, ...] = ()
) -> RunStats:
    """The real job, as an operator starts it locally, in its own process and JVM
    (``extra_args``: more of its options, e.g. ``--full-refresh``)."""
    return run_measured(
        [PYTHON, str(JOB), "--config", str(config_path), "--run-date", run_date, *extra_args],
        log_path,
    )


def read_report(output_path: Path, run_date: str) -> dict:
    """The run report the job published for ``run_date``."""
    report = output_path / "reports" / f"run_date={run_date}" / "report.json"
    return json.loads(report.read_text(encoding="utf-8"))


def directory_bytes(path: Path) -> int:
    """Total size of the files under ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
