"""Run metrics for schedulers and dashboards, pushed to a Prometheus Pushgateway.

The metrics are derived from the run's outcome and its report, so the report (always
written on success) and the Pushgateway (when ``metrics.pushgateway_url`` is set) tell the
same numbers. Pushes add to the job's group (HTTP POST), replacing only the metrics pushed:
a failed run updates ``datalake_run_success`` and ``datalake_last_failure_timestamp_seconds``
and keeps the last successful run's counts and ``datalake_last_success_timestamp_seconds``.

A Pushgateway behind HTTP basic auth takes its credentials from the environment variables
named by ``metrics.username_env`` and ``metrics.password_env``, or from the URL's user info
(``https://user:password@host``); the variables win when both are given. The password is
sent in the ``Authorization`` header only: it never appears in an error message.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway
from prometheus_client.exposition import basic_auth_handler, default_handler

METRIC_PREFIX = "datalake"
ROW_COUNTS = ("read", "used", "rejected", "deduplicated", "outside_window")


def run_metrics(
    exit_code: int,
    started_at: float,
    finished_at: float,
    durations_seconds: Mapping[str, float],
    report: Mapping[str, Any] | None,
) -> CollectorRegistry:
    """The run's metrics: outcome, stage durations and, with a report, rows per table,
    findings per rule and alerts. ``started_at`` and ``finished_at``: seconds since the epoch."""
    registry = CollectorRegistry()

    def gauge(name: str, documentation: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(f"{METRIC_PREFIX}_{name}", documentation, labels, registry=registry)

    succeeded = exit_code == 0
    gauge("run_success", "1 if the last run succeeded, 0 if it failed").set(int(succeeded))
    gauge("run_exit_code", "exit code of the last run").set(exit_code)
    gauge("last_run_timestamp_seconds", "when the last run finished, seconds since the epoch").set(
        finished_at
    )
    gauge("run_duration_seconds", "wall-clock seconds of the last run").set(
        round(finished_at - started_at, 3)
    )
    outcome = "success" if succeeded else "failure"
    gauge(f"last_{outcome}_timestamp_seconds", f"when the last {outcome} finished").set(finished_at)
    stage = gauge(
        "stage_duration_seconds", "wall-clock seconds per stage of the last run", ("stage",)
    )
    for name, seconds in durations_seconds.items():
        stage.labels(name).set(seconds)
    if report is not None:
        for count in ROW_COUNTS:
            rows = gauge(
                f"rows_{count}", f"input rows {count.replace('_', ' ')} per table", ("table",)
            )
            for table, entry in report["counts"].items():
                rows.labels(table).set(entry[count])
        findings = gauge("findings", "findings per rule in the last run", ("rule",))
        for rule, number in report["findings_by_rule"].items():
            findings.labels(rule).set(number)
        gauge("alerts", "alerts raised by the last run").set(report["alerts"])
    return registry


class PushFailed(OSError):
    """A push that did not succeed; its message never holds the password."""


@dataclass(frozen=True)
class Pushgateway:
    """Where to push (the URL without user info) and the basic-auth credentials, if any."""

    url: str
    username: str | None = None
    password: str | None = None

    def __repr__(self) -> str:  # never show the password, whatever prints this
        return f"Pushgateway(url={self.url!r}, username={self.username!r})"

    def handler(self) -> Callable[..., Callable[[], None]]:
        """The prometheus_client request handler: basic auth when there are credentials."""
        if self.username is None or self.password is None:
            return default_handler

        def authenticated(**request: Any) -> Callable[[], None]:
            return basic_auth_handler(**request, username=self.username, password=self.password)

        return authenticated

    def masked(self, text: str) -> str:
        """``text`` with the password (as given and URL-encoded) replaced by ``***``."""
        if not self.password:
            return text
        for secret in (self.password, quote(self.password, safe="")):
            text = text.replace(secret, "***")
        return text


def pushgateway(
    metrics_config: Mapping[str, Any], environ: Mapping[str, str] = os.environ
) -> Pushgateway:
    """The configured Pushgateway: its URL without user info, and the credentials from the
    variables named by ``username_env``/``password_env`` (if set), else from the URL.
    A named variable that is not set is a :class:`PushFailed` naming the variable."""
    try:
        parts = urlsplit(metrics_config["pushgateway_url"])
    except ValueError as error:  # e.g. an unbalanced IPv6 bracket; the message holds no URL
        raise PushFailed(f"malformed metrics.pushgateway_url: {error}") from None
    host = parts.netloc.rpartition("@")[2]
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    for key in ("username_env", "password_env"):
        name = metrics_config[key]
        if not name:
            continue
        if name not in environ:
            raise PushFailed(
                f"metrics.{key} names the environment variable {name}, which is not set"
            )
        if key == "username_env":
            username = environ[name]
        else:
            password = environ[name]
    return Pushgateway(urlunsplit(parts._replace(netloc=host)), username, password)


def push_run_metrics(registry: CollectorRegistry, metrics_config: Mapping[str, Any]) -> bool:
    """Push to the configured Pushgateway under ``job=<metrics.job_name>``, with basic auth
    when credentials are configured; False when no Pushgateway is configured. Errors
    propagate as :class:`PushFailed` (an OSError without the password): the caller decides
    they do not fail the run."""
    if not metrics_config["pushgateway_url"]:
        return False
    target = pushgateway(metrics_config)
    try:
        pushadd_to_gateway(
            target.url,
            job=metrics_config["job_name"],
            registry=registry,
            timeout=metrics_config["timeout_seconds"],
            handler=target.handler(),
        )
    except (OSError, ValueError) as error:  # refused, unreachable, 401, malformed URL
        raise PushFailed(target.masked(f"{type(error).__name__}: {error}")) from None
    return True
