"""Run metrics pushed to a real Prometheus Pushgateway on 127.0.0.1 and read back."""

from __future__ import annotations

import urllib.parse
import urllib.request
import uuid
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dependencies.metrics import PushFailed, push_run_metrics, pushgateway, run_metrics

REPORT = {
    "counts": {
        "device": {"read": 39, "used": 38, "rejected": 1, "deduplicated": 0, "outside_window": 0},
        "measurements": {
            "read": 400,
            "used": 300,
            "rejected": 2,
            "deduplicated": 8,
            "outside_window": 90,
        },
    },
    "findings_by_rule": {"TAMPER_EVENTS": 2, "DATA_GAP": 0},
    "alerts": 3,
}
DURATIONS = {"usage": 12.5, "detect": 30.25, "publish": 4.0}


def scrape(
    pushgateway: str, job: str, headers: dict[str, str] | None = None
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The Pushgateway's ``/metrics`` samples of one job: (name, labels without job and
    instance) -> value."""
    request = urllib.request.Request(f"{pushgateway}/metrics", headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode("utf-8")
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("job") != job:
                continue
            labels = tuple(
                sorted((k, v) for k, v in sample.labels.items() if k not in ("job", "instance"))
            )
            samples[(sample.name, labels)] = sample.value
    return samples


def metrics_config(pushgateway: str, **settings: Any) -> dict[str, Any]:
    """The ``metrics`` section for ``pushgateway`` with a job name of its own."""
    return {
        "pushgateway_url": pushgateway,
        "job_name": f"datalake-{uuid.uuid4().hex}",
        "timeout_seconds": 10.0,
        "username_env": "",
        "password_env": "",
        **settings,
    }


def test_a_successful_run_pushes_rows_findings_alerts_durations_and_success(pushgateway):
    # GIVEN the metrics of a successful run
    config = metrics_config(pushgateway)
    registry = run_metrics(0, 1_800_000_000.0, 1_800_000_050.5, DURATIONS, REPORT)

    # WHEN they are pushed
    pushed = push_run_metrics(registry, config)

    # THEN the Pushgateway serves them under the job's name
    samples = scrape(pushgateway, config["job_name"])
    assert pushed is True
    assert samples[("datalake_rows_read", (("table", "device"),))] == 39
    assert samples[("datalake_rows_rejected", (("table", "device"),))] == 1
    assert samples[("datalake_rows_used", (("table", "measurements"),))] == 300
    assert samples[("datalake_rows_deduplicated", (("table", "measurements"),))] == 8
    assert samples[("datalake_rows_outside_window", (("table", "measurements"),))] == 90
    assert samples[("datalake_findings", (("rule", "TAMPER_EVENTS"),))] == 2
    assert samples[("datalake_findings", (("rule", "DATA_GAP"),))] == 0
    assert samples[("datalake_alerts", ())] == 3
    assert samples[("datalake_stage_duration_seconds", (("stage", "detect"),))] == 30.25
    assert samples[("datalake_run_success", ())] == 1
    assert samples[("datalake_run_exit_code", ())] == 0
    assert samples[("datalake_run_duration_seconds", ())] == 50.5
    assert samples[("datalake_last_success_timestamp_seconds", ())] == 1_800_000_050.5
    assert samples[("datalake_last_run_timestamp_seconds", ())] == 1_800_000_050.5
    assert ("datalake_last_failure_timestamp_seconds", ()) not in samples


def test_a_failed_run_updates_the_outcome_and_keeps_the_last_success(pushgateway):
    # GIVEN a successful run was pushed
    config = metrics_config(pushgateway)
    push_run_metrics(run_metrics(0, 1_800_000_000.0, 1_800_000_060.0, DURATIONS, REPORT), config)

    # WHEN a later run fails in its first stage and pushes its metrics
    push_run_metrics(
        run_metrics(3, 1_800_086_400.0, 1_800_086_410.0, {"usage": 10.0}, None), config
    )

    # THEN it reads as failed, and the last success and its counts are still there
    samples = scrape(pushgateway, config["job_name"])
    assert samples[("datalake_run_success", ())] == 0
    assert samples[("datalake_run_exit_code", ())] == 3
    assert samples[("datalake_last_failure_timestamp_seconds", ())] == 1_800_086_410.0
    assert samples[("datalake_last_run_timestamp_seconds", ())] == 1_800_086_410.0
    assert samples[("datalake_last_success_timestamp_seconds", ())] == 1_800_000_060.0
    assert samples[("datalake_rows_read", (("table", "device"),))] == 39
    stages = {
        labels: value
        for (name, labels), value in samples.items()
        if name == "datalake_stage_duration_seconds"
    }
    assert stages == {(("stage", "usage"),): 10.0}


def test_without_a_pushgateway_nothing_is_pushed():
    # GIVEN no Pushgateway configured
    config = metrics_config("")

    # WHEN the metrics are pushed
    # THEN nothing is sent
    assert push_run_metrics(run_metrics(0, 0.0, 1.0, DURATIONS, REPORT), config) is False


def test_an_unreachable_pushgateway_raises_an_os_error_for_the_caller_to_handle():
    # GIVEN a Pushgateway URL nothing listens on
    config = metrics_config("http://127.0.0.1:9", timeout_seconds=2.0)

    # WHEN the metrics are pushed
    # THEN the error is a PushFailed (an OSError), which the job logs as a warning and carries on
    with pytest.raises(PushFailed):
        push_run_metrics(run_metrics(0, 0.0, 1.0, DURATIONS, REPORT), config)


# --- A Pushgateway behind basic auth ---


def test_credentials_come_from_the_named_variables_else_from_the_url():
    # GIVEN a URL with user info, and variables named in the config
    url = "https://url-user:url%2Fpass@push.example:9091/base"
    environ = {"PUSH_USER": "env-user", "PUSH_PASSWORD": "env-pass"}

    # WHEN the Pushgateway is resolved with and without the variables
    from_url = pushgateway(metrics_config(url), environ)
    from_env = pushgateway(
        metrics_config(url, username_env="PUSH_USER", password_env="PUSH_PASSWORD"), environ
    )

    # THEN the URL loses its user info; the variables win over it
    assert (from_url.url, from_url.username, from_url.password) == (
        "https://push.example:9091/base",
        "url-user",
        "url/pass",
    )
    assert (from_env.url, from_env.username, from_env.password) == (
        "https://push.example:9091/base",
        "env-user",
        "env-pass",
    )
    assert "pass" not in repr(from_url) + repr(from_env)


def test_a_named_variable_that_is_not_set_is_named_in_the_error():
    # GIVEN a config naming a password variable that is not set
    config = metrics_config("http://127.0.0.1:9", password_env="DATALAKE_TEST_UNSET_PASSWORD")

    # WHEN the metrics are pushed / THEN the error names the variable
    with pytest.raises(PushFailed, match="DATALAKE_TEST_UNSET_PASSWORD, which is not set"):
        push_run_metrics(run_metrics(0, 0.0, 1.0, DURATIONS, REPORT), config)


def test_the_right_credentials_from_the_environment_push(pushgateway_with_basic_auth, monkeypatch):
    # GIVEN a Pushgateway that requires basic auth, and its credentials in variables named by the
    # config
    gateway = pushgateway_with_basic_auth
    monkeypatch.setenv("DATALAKE_TEST_PUSH_USER", gateway.username)
    monkeypatch.setenv("DATALAKE_TEST_PUSH_PASSWORD", gateway.password)
    config = metrics_config(
        gateway.url,
        username_env="DATALAKE_TEST_PUSH_USER",
        password_env="DATALAKE_TEST_PUSH_PASSWORD",
    )

    # WHEN the metrics are pushed
    pushed = push_run_metrics(
        run_metrics(0, 1_800_000_000.0, 1_800_000_050.5, DURATIONS, REPORT), config
    )

    # THEN they arrived
    assert pushed is True
    assert (
        scrape(gateway.url, config["job_name"], gateway.authorization)[("datalake_alerts", ())] == 3
    )


def test_the_right_credentials_in_the_url_push(pushgateway_with_basic_auth):
    # GIVEN the credentials as the URL's user info (the password percent-encoded)
    gateway = pushgateway_with_basic_auth
    config = metrics_config(gateway.url_with_user_info(gateway.password))

    # WHEN the metrics are pushed
    push_run_metrics(run_metrics(0, 1_800_000_000.0, 1_800_000_050.5, DURATIONS, REPORT), config)

    # THEN they arrived
    assert (
        scrape(gateway.url, config["job_name"], gateway.authorization)[("datalake_run_success", ())]
        == 1
    )


@pytest.mark.parametrize("where", ["url", "environment"])
def test_wrong_credentials_fail_without_showing_the_password(
    pushgateway_with_basic_auth, monkeypatch, where
):
    # GIVEN a wrong password, in the URL or in the environment
    gateway = pushgateway_with_basic_auth
    wrong = "wrong-Pa55:/@%"
    if where == "url":
        config = metrics_config(gateway.url_with_user_info(wrong))
    else:
        monkeypatch.setenv("DATALAKE_TEST_PUSH_PASSWORD", wrong)
        config = metrics_config(
            gateway.url_with_user_info("unused"), password_env="DATALAKE_TEST_PUSH_PASSWORD"
        )

    # WHEN the metrics are pushed
    with pytest.raises(PushFailed) as failure:
        push_run_metrics(run_metrics(0, 0.0, 1.0, DURATIONS, REPORT), config)

    # THEN the Pushgateway refused them, and the error shows neither the password nor its URL form
    assert "401" in str(failure.value)
    assert wrong not in str(failure.value)
    assert urllib.parse.quote(wrong, safe="") not in str(failure.value)
    # no chained traceback
    assert failure.value.__cause__ is None
    assert failure.value.__suppress_context__
    assert ("datalake_alerts", ()) not in scrape(
        gateway.url, config["job_name"], gateway.authorization
    )
