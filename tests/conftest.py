"""Shared fixtures: one local SparkSession for the whole suite, job configs in tmp dirs, the
servers and the cluster the tests start, and the long runs (the docs pages, whole jobs in
processes of their own) in the background."""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bcrypt
import pyspark
import pytest
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, DoubleType

from dependencies import jars, s3
from dependencies.spark import DRIVER_CLASS_PATH, REQUIRED_SPARK_CONFIG

if TYPE_CHECKING:
    from jobs.ledger import Inputs

REPO = Path(__file__).resolve().parent.parent
TEST_DATA = REPO / "tests" / "test_data"
RUN_DATE = "2026-11-15"
# Spark for tiny inputs: two shuffle partitions, and the Delta tables' short logs read as one.
SMALL_SPARK = {
    "spark.sql.shuffle.partitions": "2",
    "spark.databricks.delta.snapshotPartitions": "1",
    # Adaptive execution plans each stage of a query as a job of its own: on tiny inputs that
    # is all it does (the sample: 57 jobs a run, 30 without; 20-24 s a warm run, 16-18 s).
    # A run turns it off itself for a small input (adaptive_execution_min_input_mib, tested at
    # the console); the suite's own session has no run to decide it. The cluster run keeps it.
    "spark.sql.adaptive.enabled": "false",
}

# The Spark jobs a run of the sample starts in its timed stages (its report's spark_jobs).
# Each job is planned and scheduled apart: on small data their number, not the rows, is
# what a run costs. Lower this as the job needs fewer; it must not creep back up. 30 jobs
# with adaptive execution off, as a run has it for an input this small (and the suite's
# settings for tiny inputs, SMALL_SPARK); with it on, a job per stage of a query: 49 jobs.
MAX_SAMPLE_SPARK_JOBS = 34

# Amounts are compared to this many decimals: the same rows summed in another order are the
# same rows.
DECIMALS = 6

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
# boto3 in tests talks only to servers the tests start: fake credentials, no ~/.aws files.
AWS_TEST_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
os.environ.update(AWS_TEST_ENVIRONMENT)
os.environ.pop("AWS_PROFILE", None)
# Every job the tests run in a JVM of its own (spark-submit, a docs page's run, the job as a
# process) lives for one run of the sample: with the JIT's first tier alone it costs a third
# less CPU (65 -> 44 core-seconds), and the suite is CPU-bound. The suite's own session lives
# for the whole suite and keeps the full JIT (C1 alone makes it slower: docs/performance.md).
# With the first tier alone the JVM reserves 48 MB for compiled code, not 240: a run on S3A
# (the AWS SDK's classes) fills that about 25 s in; the compiler stops, and the JVM dies
# ("Out of space in CodeCache for adapters") when it next needs an adapter.
SHORT_LIVED_JVM = {"SPARK_SUBMIT_OPTS": "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m"}
os.environ.update(SHORT_LIVED_JVM)


def stop_process(process: subprocess.Popen) -> None:
    """Terminate a process this suite started, and wait for it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def packages_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """packages.zip, built by ./build_dependencies.sh into a temporary directory."""
    output = tmp_path_factory.mktemp("package") / "packages.zip"
    built = subprocess.run(
        [str(REPO / "build_dependencies.sh"), str(output)],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr
    return output


@pytest.fixture
def moto_aws_config(moto_server: str) -> dict[str, Any]:
    """The ``aws`` config section pointing at the moto server, with few retries."""
    return {"region": "us-east-1", "profile": "", "endpoint_url": moto_server, "max_attempts": 2}


def submit_command(
    spark_submit: str,
    config: Path,
    package: Path,
    lock_dir: Path,
    lock_wait: float,
    dates: Sequence[str],
    *more: str,
) -> list[str]:
    """``python -m dependencies.submit`` as the Makefile calls it, for one date or a range
    (``dates``: one, or the first and the last), with ``more`` options."""
    when = ["--run-date", dates[0]] if len(dates) == 1 else ["--from", dates[0], "--to", dates[1]]
    return [
        sys.executable,
        "-m",
        "dependencies.submit",
        "--spark-submit",
        spark_submit,
        "--master",
        "local[1]",
        "--deploy-mode",
        "client",
        "--config",
        str(config),
        "--package",
        str(package),
        "--lock-dir",
        str(lock_dir),
        "--lock-wait",
        str(lock_wait),
        *more,
        *when,
    ]


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """The suite's one local session: the settings every session of the job has (UTC, Delta,
    no call-site capture), two shuffle partitions, no UI, and room for every query's
    generated code (the suite runs the same queries many times: each is compiled once)."""
    for key in SHORT_LIVED_JVM:  # this JVM is the long-lived one
        os.environ.pop(key)
    session = (
        SparkSession.builder.master("local[2]")
        .config("spark.sql.codegen.cache.maxEntries", "5000")
        .appName("datalake-tests")
        .config(map=SMALL_SPARK)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", "6g")
        .config(DRIVER_CLASS_PATH, jars.class_path())
        .config(map=REQUIRED_SPARK_CONFIG)
        .getOrCreate()
    )
    os.environ.update(SHORT_LIVED_JVM)
    yield session
    session.stop()


def _rounded(frame: DataFrame, name: str) -> Column:
    data_type = frame.schema[name].dataType
    if isinstance(data_type, DoubleType):
        return F.round(F.col(name), DECIMALS).alias(name)
    if isinstance(data_type, ArrayType) and isinstance(data_type.elementType, DoubleType):
        return F.transform(F.col(name), lambda amount: F.round(amount, DECIMALS)).alias(name)
    return F.col(name)


def rounded(frame: DataFrame) -> DataFrame:
    """``frame`` with its doubles (and arrays of doubles) rounded to :data:`DECIMALS`."""
    return frame.select(*[_rounded(frame, name) for name in frame.columns])


def row_hashes(frame: DataFrame) -> Column:
    """Each row's hash, its doubles rounded (an aggregate's input: xor them for a set)."""
    return F.bit_xor(F.xxhash64(*[F.col(name) for name in sorted(frame.columns)]))


def fingerprint(frame: DataFrame) -> int:
    """One number for a set of rows, their order aside and doubles rounded: the xor of each
    row's hash."""
    return rounded(frame).agg(row_hashes(frame)).first()[0] or 0


def write_job_config(
    directory: Path, overrides: dict[str, Any] | None = None, name: str = "job_config.json"
) -> Path:
    """Write a job config into ``directory`` (input: tests/test_data, output:
    ``directory/output``) with ``overrides`` merged one level deep; return its path."""
    config: dict[str, Any] = {
        "input": {"path": str(TEST_DATA), "format": "csv"},
        "output": {"path": str(directory / "output")},
        "spark": dict(SMALL_SPARK),
    }
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    path = directory / name
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


# The sample's last reading is 2026-11-16T00:00Z: runs of it start just after.
SAMPLE_RUN_STARTED_AT = datetime(2026, 11, 16, 6, tzinfo=UTC)


def sample_inputs(spark: SparkSession) -> Inputs:
    """What the pass over the sample's readings needs (bundled config, run date RUN_DATE)."""
    from dependencies.config import bundled_defaults
    from dependencies.run_window import RunWindow
    from jobs.inputs import extract, readings_inputs, validate_tables

    config = {**bundled_defaults(), "input": {"path": str(TEST_DATA), "format": "csv"}}
    window = RunWindow.from_config(datetime.fromisoformat(RUN_DATE).date(), config)
    raw = extract(spark, config["input"], window)
    checked = validate_tables(raw, window)
    return readings_inputs(checked, config["usage"], window, SAMPLE_RUN_STARTED_AT)


def sample_rows(spark: SparkSession) -> DataFrame:
    """The sample's readings folded by the one pass into the ledger's rows, as the store
    keeps a day's (each component's day state with them); nothing is computed yet."""
    from jobs.ledger import block_rows

    inputs = sample_inputs(spark)
    return block_rows(inputs, None, inputs.window.read_start)


@pytest.fixture(scope="session")
def sample_published(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run of the job over tests/test_data for RUN_DATE, shared by every test that reads
    what a run of the sample publishes (read it, never write into it); its output path."""
    from jobs import datalake_job

    config = write_job_config(tmp_path_factory.mktemp("sample_published"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datalake_job, "run_start_instant", lambda: SAMPLE_RUN_STARTED_AT)
        assert (
            datalake_job.main(["--config", str(config), "--run-date", RUN_DATE])
            == datalake_job.EXIT_OK
        )
    return config.parent / "output"


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write a job config (input: tests/test_data, output: a tmp dir) with ``overrides``
    merged one level deep; return its path."""

    def write(overrides: dict[str, Any] | None = None, name: str = "job_config.json") -> Path:
        return write_job_config(tmp_path, overrides, name)

    return write


# --- A Spark standalone cluster on 127.0.0.1 (one master, one worker) ---

SPARK_HOME = Path(pyspark.__file__).resolve().parent
CLUSTER_START_SECONDS = 180


def cluster_environment(**extra: str) -> dict[str, str]:
    """The environment of the daemons and of spark-submit: no repository on PYTHONPATH,
    everything on 127.0.0.1, the virtualenv's Python for drivers and executors."""
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    environment.update(
        SPARK_HOME=str(SPARK_HOME),
        SPARK_LOCAL_IP="127.0.0.1",
        PYSPARK_PYTHON=sys.executable,
        PYSPARK_DRIVER_PYTHON=sys.executable,
        **extra,
    )
    return environment


def stop_group(process: subprocess.Popen) -> None:
    """Stop a process started in its own session, with its children (executors)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A standalone master and one worker started from the installed pyspark; the master URL.
    Both are stopped whatever happens; the fixture fails if the worker never registers.
    Shared by the suite (tests/test_cluster.py, the docs examples): each run is its own
    application."""
    work = tmp_path_factory.mktemp("cluster")
    master_port = free_port()
    master_url = f"spark://127.0.0.1:{master_port}"
    daemons = {
        "master": [
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            str(master_port),
            "--webui-port",
            str(free_port()),
        ],
        "worker": [
            "org.apache.spark.deploy.worker.Worker",
            master_url,
            "--host",
            "127.0.0.1",
            "--webui-port",
            str(free_port()),
            "--cores",
            "2",
            "--memory",
            "2g",
            "--work-dir",
            str(work / "worker"),
        ],
    }
    started: dict[str, subprocess.Popen] = {}
    try:
        for name, arguments in daemons.items():
            with (work / f"{name}.log").open("w") as log:
                started[name] = subprocess.Popen(
                    [str(SPARK_HOME / "bin" / "spark-class"), *arguments],
                    env=cluster_environment(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        deadline = time.monotonic() + CLUSTER_START_SECONDS
        while "registered with master" not in (work / "worker.log").read_text():
            dead = [name for name, process in started.items() if process.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = {name: (work / f"{name}.log").read_text()[-1500:] for name in daemons}
                pytest.fail(f"the Spark cluster did not come up (exited: {dead}): {logs}")
            time.sleep(0.5)
        yield master_url
    finally:
        for process in reversed(started.values()):
            stop_group(process)


# --- Long runs in the background: the docs pages, then the test modules' runs of the whole job ---

# A test module's start of its long run: given the session's fixture request (for session
# fixtures) and the background thread, it submits the run and returns its future.
BackgroundStart = Callable[[pytest.FixtureRequest, ThreadPoolExecutor], Future]
BACKGROUND_STARTS: dict[str, BackgroundStart] = {}


def in_background(start: BackgroundStart) -> BackgroundStart:
    """Register a test module's start of its long run (a whole job in processes of its own):
    it is submitted at the suite's start, after the docs pages, and the module's tests run
    last, reading its result (``background_runs[module]``)."""
    BACKGROUND_STARTS[start.__module__] = start
    return start


def runs_docs_pages(item: pytest.Item) -> bool:
    """Whether a test reads what the docs pages' runs printed."""
    return "page_runs" in getattr(item, "fixturenames", ())


def module_name(item: pytest.Item) -> str | None:
    """The name of the test module ``item`` is in (None for an item outside one)."""
    return getattr(getattr(item, "module", None), "__name__", None)


# The marker of a test that runs after all others, when every background run has been read:
# alone on the machine (a long test whose own time is held to a bound).
ALONE = "alone"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{ALONE}: run last, alone on the machine")


def background_order(item: pytest.Item) -> int:
    """0 for a test that reads no background run; else its run's place in the queue; after
    them all, a test marked :data:`ALONE`."""
    if item.get_closest_marker(ALONE) is not None:
        return 2 + len(BACKGROUND_STARTS)
    if runs_docs_pages(item):
        return 1
    module = module_name(item)
    return 2 + list(BACKGROUND_STARTS).index(module) if module in BACKGROUND_STARTS else 0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that read a background run last, in the order the runs are queued: the
    runs go on while the other tests do, and are done, or nearly, when their tests ask.
    Then the tests marked :data:`ALONE`, with nothing else running."""
    items.sort(key=background_order)


@pytest.fixture(scope="session")
def background() -> Iterator[ThreadPoolExecutor]:
    """The one thread that runs the suite's long runs, one at a time, beside the tests (the
    machine has two cores: the tests in this process use about one)."""
    with ThreadPoolExecutor(1) as pool:
        yield pool


@pytest.fixture(scope="session")
def page_runs(
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
    background: ThreadPoolExecutor,
) -> Iterator[dict[str, Future]]:
    """Every docs page with examples, running in a scratch copy of its own: its outcomes (a
    future) by page. The pages are waited for, and the checkout checked unchanged, at the end."""
    import docs_examples

    master_url = request.getfixturevalue("spark_cluster") if docs_examples.needs_cluster() else None
    with docs_examples.running_pages(master_url, tmp_path_factory, background) as runs:
        yield runs


@pytest.fixture(scope="session", autouse=True)
def background_runs(
    request: pytest.FixtureRequest, background: ThreadPoolExecutor
) -> dict[str, Future]:
    """Queue the long runs of the selected tests with the suite's first test: the docs
    pages first, then each registered module's run (:func:`in_background`); their futures
    by module."""
    items = request.session.items
    if any(runs_docs_pages(item) for item in items):
        request.getfixturevalue("page_runs")
    selected = {module_name(item) for item in items}
    return {
        module: started(start, request, background)
        for module, start in BACKGROUND_STARTS.items()
        if module in selected
    }


def started(
    start: BackgroundStart, request: pytest.FixtureRequest, background: ThreadPoolExecutor
) -> Future:
    """``start``'s future; if starting fails (a server or the cluster that does not come
    up), a future holding that failure: only the module's tests fail, when they read it."""
    try:
        return start(request, background)
    except (Exception, pytest.fail.Exception) as error:
        failed: Future = Future()
        failed.set_exception(error)
        return failed


# --- Real servers on 127.0.0.1, started by the tests (moto for AWS, Prometheus Pushgateway) ---

MOTO_SERVER = Path(sys.executable).with_name("moto_server")
PUSHGATEWAY = shutil.which("prometheus-pushgateway") or "/usr/bin/prometheus-pushgateway"
SERVER_START_SECONDS = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def moto_command(port: int) -> list[str]:
    """The command line of a moto server (S3, CloudWatch Logs, IAM ...) on 127.0.0.1:port."""
    return [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)]


@dataclass
class RunningServer:
    """A server process started by a test, and the URL it answers on."""

    url: str
    process: subprocess.Popen

    def stop(self) -> None:
        """Stop the process and wait for it."""
        stop_process(self.process)


def start_server(
    command: Callable[[int], list[str]],
    ready_path: str,
    log_path: Path,
    headers: dict[str, str] | None = None,
) -> RunningServer:
    """Start ``command(port)`` on a free port and wait until ``ready_path`` answers HTTP 200
    (asked with ``headers``). Fails (never skips) when the server cannot be started: CI must
    run these tests."""
    for _ in range(3):  # another process may take the port between probe and bind
        port = free_port()
        with log_path.open("ab") as log:
            process = subprocess.Popen(command(port), stdout=log, stderr=subprocess.STDOUT)
        server = RunningServer(f"http://127.0.0.1:{port}", process)
        deadline = time.monotonic() + SERVER_START_SECONDS
        while time.monotonic() < deadline and process.poll() is None:
            try:
                ready = urllib.request.Request(server.url + ready_path, headers=headers or {})
                with urllib.request.urlopen(ready, timeout=1) as response:
                    if response.status == 200:
                        return server
            except OSError:
                time.sleep(0.1)
        server.stop()
    raise RuntimeError(f"{command(0)[0]} did not start; see {log_path}")


@pytest.fixture
def start_moto_server(tmp_path: Path) -> Iterator[Callable[[], RunningServer]]:
    """Start private moto servers (S3, CloudWatch Logs, ...) a test may stop or kill; all
    are stopped after the test."""
    servers: list[RunningServer] = []

    def start() -> RunningServer:
        server = start_server(moto_command, "/moto-api/", tmp_path / "moto_server.log")
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def client(moto_aws_config: dict[str, Any]) -> Any:
    """A boto3 S3 client of the suite's moto server."""
    return s3.client(moto_aws_config)


@pytest.fixture
def bucket(client: Any) -> str:
    """A new bucket of this test's own on the shared moto server."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The suite's moto server (all AWS services moto mocks); its endpoint URL. Tests share
    it, so each should use its own bucket / log group names."""
    server = start_server(
        moto_command, "/moto-api/", tmp_path_factory.mktemp("moto") / "moto_server.log"
    )
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Prometheus Pushgateway (Debian's ``prometheus-pushgateway``, installed by
    ``make install``) with its own persistence file; its URL."""
    directory = tmp_path_factory.mktemp("pushgateway")
    server = start_server(
        lambda port: [
            PUSHGATEWAY,
            f"--web.listen-address=127.0.0.1:{port}",
            f"--persistence.file={directory / 'metrics.store'}",
        ],
        "/-/ready",
        directory / "pushgateway.log",
    )
    yield server.url
    server.stop()


@dataclass(frozen=True)
class AuthPushgateway:
    """A Pushgateway that requires HTTP basic auth: its URL (no user info) and the one
    user it accepts."""

    url: str
    username: str
    password: str

    @property
    def authorization(self) -> dict[str, str]:
        """The request header that authenticates as the accepted user."""
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    @property
    def masked_url(self) -> str:
        """The URL with user info as the logs show it: the password as ``***``."""
        return self.url.replace("://", f"://{self.username}:***@", 1)

    def url_with_user_info(self, password: str) -> str:
        """The URL with ``username:password@`` in it (the password percent-encoded)."""
        return self.url.replace(
            "://", f"://{self.username}:{urllib.parse.quote(password, safe='')}@", 1
        )


@pytest.fixture(scope="session")
def pushgateway_with_basic_auth(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AuthPushgateway]:
    """A Prometheus Pushgateway started with a ``--web.config.file`` whose
    ``basic_auth_users`` holds one user (bcrypt hash of a random password)."""
    directory = tmp_path_factory.mktemp("pushgateway_auth")
    username, password = "datalake", f"pw-{secrets.token_hex(8)}:/@%"
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    web_config = directory / "web.yml"
    web_config.write_text(f"basic_auth_users:\n  {username}: '{hashed}'\n", encoding="utf-8")
    pending = AuthPushgateway("", username, password)
    server = start_server(
        lambda port: [
            PUSHGATEWAY,
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.config.file={web_config}",
            f"--persistence.file={directory / 'metrics.store'}",
        ],
        "/-/ready",
        directory / "pushgateway.log",
        pending.authorization,
    )
    yield AuthPushgateway(server.url, username, password)
    server.stop()


@pytest.fixture(scope="module")
def driver_log(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A file that receives, through a log4j appender in the session's JVM, every line the
    log4j logger ``datalake`` writes to the driver log (the message only, one per line)."""
    jvm = spark.sparkContext._jvm
    log4j = jvm.org.apache.logging.log4j
    path = tmp_path_factory.mktemp("driver_log") / "datalake.log"
    name = f"datalake-test-{path.parent.name}"
    log4j.core.config.Configurator.setLevel("datalake", log4j.Level.toLevel("INFO"))
    context = log4j.LogManager.getContext(False)
    configuration = context.getConfiguration()
    layout = log4j.core.layout.PatternLayout.newBuilder().withPattern("%m%n").build()
    appender = (
        log4j.core.appender.FileAppender.newBuilder()
        .setName(name)
        .withFileName(str(path))
        .setLayout(layout)
        .build()
    )
    appender.start()
    configuration.addAppender(appender)
    configuration.getLoggerConfig("datalake").addAppender(appender, None, None)
    context.updateLoggers()
    yield path
    configuration.getLoggerConfig("datalake").removeAppender(name)
    appender.stop()
    context.updateLoggers()
