"""The CloudWatch Logs target against a real moto server on 127.0.0.1: order, batching
limits, retries with backoff, and giving up without failing the caller."""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from dependencies.cloudwatch import (
    EVENT_OVERHEAD_BYTES,
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    MAX_BATCH_SPAN_MILLIS,
    MAX_EVENT_BYTES,
    CloudWatchLogsHandler,
    backoff_seconds,
    log_event,
    logs_client,
    plan_batches,
)
from dependencies.config import bundled_defaults
from dependencies.logging import LOGGER_NAME, JsonFormatter, build_logger, flush_logger

PUT_LOG_EVENTS = "Logs_20140328.PutLogEvents"
HOUR_MILLIS = 60 * 60 * 1000


class FaultyEndpoint:
    """An HTTP server on 127.0.0.1 in front of moto: it answers the next ``failures``
    PutLogEvents calls with ``error`` (status, service error code), forwards everything
    else, and counts the PutLogEvents calls it saw."""

    def __init__(self, upstream: str) -> None:
        self.failures = 0
        self.error = (400, "ThrottlingException")
        self.put_calls = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("X-Amz-Target") == PUT_LOG_EVENTS:
                    endpoint.put_calls += 1
                    if endpoint.failures:
                        endpoint.failures -= 1
                        status, code = endpoint.error
                        self.answer(
                            status, json.dumps({"__type": code, "message": "injected"}).encode()
                        )
                        return
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "content-length")
                }
                request = urllib.request.Request(upstream + self.path, body, headers, method="POST")
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        self.answer(response.status, response.read())
                except urllib.error.HTTPError as error:
                    self.answer(error.code, error.read())

            def answer(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def faulty_endpoint(moto_server: str) -> Iterator[FaultyEndpoint]:
    endpoint = FaultyEndpoint(moto_server)
    yield endpoint
    endpoint.stop()


def client_for(endpoint_url: str) -> Any:
    return logs_client({"region": "us-east-1", "profile": "", "endpoint_url": endpoint_url}, 5.0)


@pytest.fixture
def make_handler() -> Iterator[
    Callable[..., tuple[logging.Logger, CloudWatchLogsHandler, list[str]]]
]:
    """A logger of its own with a CloudWatch handler (short intervals and backoff), the
    handler, and the list of problems it reported; closed after the test."""
    handlers: list[CloudWatchLogsHandler] = []

    def make(
        client: Any, group: str, **settings: Any
    ) -> tuple[logging.Logger, CloudWatchLogsHandler, list[str]]:
        reports: list[str] = []
        options = {
            "create_missing": True,
            "flush_interval_seconds": 0.1,
            "max_retries": 3,
            "retry_base_seconds": 0.01,
            "close_timeout_seconds": 60.0,
            "max_queued_events": 100_000,
            **settings,
        }
        handler = CloudWatchLogsHandler(
            client, group, lambda: "stream-1", report=reports.append, **options
        )
        handler.setFormatter(JsonFormatter())
        logger = logging.getLogger(f"cloudwatch-test-{uuid.uuid4().hex}")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        handlers.append(handler)
        return logger, handler, reports

    yield make
    for handler in handlers:
        handler.close()


def read_back(client: Any, group: str, stream: str) -> list[dict[str, Any]]:
    """Every event of the stream, oldest first."""
    events: list[dict[str, Any]] = []
    token = None
    while True:
        page = client.get_log_events(
            logGroupName=group,
            logStreamName=stream,
            startFromHead=True,
            **({"nextToken": token} if token else {}),
        )
        events += page["events"]
        if page["nextForwardToken"] == token:
            return events
        token = page["nextForwardToken"]


def test_batches_are_in_time_order_and_within_every_service_limit():
    # GIVEN 25,000 small events out of order, and 3,000 events of ~1 KiB over 30 hours
    small = [log_event(1_000_000 + (number * 7919) % 25_000, "x") for number in range(25_000)]
    large = [log_event(number * 36_000, "y" * 1_000) for number in range(3_000)]

    for events in (small, large):
        # WHEN they are planned into batches
        batches = plan_batches(events)

        # THEN nothing is lost, events are in time order, and each batch is within the limits
        flat = [event for batch in batches for event in batch]
        assert sorted(flat) == sorted(events)
        assert [event.timestamp for event in flat] == sorted(event.timestamp for event in events)
        for batch in batches:
            assert len(batch) <= MAX_BATCH_EVENTS
            assert (
                sum(len(event.message.encode()) + EVENT_OVERHEAD_BYTES for event in batch)
                <= MAX_BATCH_BYTES
            )
            assert batch[-1].timestamp - batch[0].timestamp < MAX_BATCH_SPAN_MILLIS
    assert [len(batch) for batch in plan_batches(small)] == [10_000, 10_000, 5_000]
    assert len(plan_batches(large)) == 3  # cut by bytes (1,022 events of 1,026 bytes a batch)
    spanning = plan_batches(
        [log_event(0, "a"), log_event(23 * HOUR_MILLIS, "b"), log_event(25 * HOUR_MILLIS, "c")]
    )
    assert [[event.message for event in batch] for batch in spanning] == [["a", "b"], ["c"]]


def test_an_event_larger_than_the_service_allows_is_cut_to_fit():
    # GIVEN a message of 300,000 multi-byte characters
    message = "é" * 300_000

    # WHEN it becomes an event
    event = log_event(0, message)

    # THEN it fits the per-event limit, is marked as cut, and is still valid UTF-8 text
    assert (
        event.size == len(event.message.encode("utf-8")) + EVENT_OVERHEAD_BYTES <= MAX_EVENT_BYTES
    )
    assert event.message.endswith("[truncated]")
    assert event.message.startswith("éé")


def test_backoff_grows_exponentially_with_jitter_and_is_capped():
    # GIVEN a base of 1 second
    # WHEN backoffs are drawn for retries 0, 3 and 10
    first = [backoff_seconds(0, 1.0) for _ in range(200)]
    fourth = [backoff_seconds(3, 1.0) for _ in range(200)]
    late = [backoff_seconds(10, 1.0) for _ in range(200)]

    # THEN each is jittered within 0..base*2^retry, and never above the 20 s cap
    assert all(0 <= value <= 1 for value in first)
    assert all(0 <= value <= 8 for value in fourth)
    assert max(fourth) > 4
    assert len(set(fourth)) > 100
    assert all(0 <= value <= 20 for value in late)
    assert max(late) > 10


def test_events_arrive_in_order_in_the_group_and_stream_the_handler_creates(
    moto_server, make_handler
):
    # GIVEN a handler on a moto server where the group does not exist yet
    client = client_for(moto_server)
    group = f"group-{uuid.uuid4().hex}"
    logger, handler, reports = make_handler(client, group)

    # WHEN 50 events are logged and flushed
    for number in range(50):
        logger.info("event %d", number, extra={"number": number})
    handler.flush()

    # THEN the stream holds the 50 records, in order, as JSON
    events = read_back(client, group, "stream-1")
    assert [json.loads(event["message"])["fields"]["number"] for event in events] == list(range(50))
    assert [json.loads(event["message"])["message"] for event in events[:2]] == [
        "event 0",
        "event 1",
    ]
    assert handler.delivered_events == 50
    assert reports == []


def test_a_burst_of_25000_events_is_sent_in_batches_within_the_limits(moto_server, make_handler):
    # GIVEN a handler whose client records every PutLogEvents request it sends
    client = client_for(moto_server)
    sent: list[list[dict[str, Any]]] = []
    client.meta.events.register(
        "provide-client-params.cloudwatch-logs.PutLogEvents",
        lambda params, **_: sent.append(params["logEvents"]),
    )
    group = f"burst-{uuid.uuid4().hex}"
    logger, handler, reports = make_handler(client, group, flush_interval_seconds=5.0)

    # WHEN 25,000 events are logged at once
    for number in range(25_000):
        logger.info("burst event %d", number)
    handler.flush()

    # THEN every request respects the count, byte and time-span limits and time order
    assert sum(len(batch) for batch in sent) == 25_000
    assert len(sent) >= 3
    for batch in sent:
        assert len(batch) <= MAX_BATCH_EVENTS
        assert (
            sum(len(event["message"].encode()) + EVENT_OVERHEAD_BYTES for event in batch)
            <= MAX_BATCH_BYTES
        )
        timestamps = [event["timestamp"] for event in batch]
        assert timestamps == sorted(timestamps)
        assert timestamps[-1] - timestamps[0] < MAX_BATCH_SPAN_MILLIS
    # AND all 25,000 are read back from the service, in the order they were logged
    events = read_back(client, group, "stream-1")
    assert [json.loads(event["message"])["message"] for event in events] == [
        f"burst event {number}" for number in range(25_000)
    ]
    assert reports == []


def test_throttling_is_retried_until_the_events_are_delivered(faulty_endpoint, make_handler):
    # GIVEN an endpoint that throttles the next two PutLogEvents calls
    faulty_endpoint.failures = 2
    faulty_endpoint.error = (400, "ThrottlingException")
    client = client_for(faulty_endpoint.url)
    group = f"throttled-{uuid.uuid4().hex}"
    logger, handler, reports = make_handler(client, group, max_retries=3)

    # WHEN events are logged and flushed
    for number in range(5):
        logger.info("event %d", number)
    handler.flush()

    # THEN the batch was sent three times and delivered once, in order, with nothing reported
    assert faulty_endpoint.put_calls == 3
    events = read_back(client, group, "stream-1")
    assert [json.loads(event["message"])["message"] for event in events] == [
        f"event {n}" for n in range(5)
    ]
    assert handler.delivered_events == 5
    assert reports == []


def test_an_unavailable_endpoint_is_given_up_on_and_the_caller_carries_on(
    faulty_endpoint, make_handler
):
    # GIVEN an endpoint that answers every PutLogEvents with 503 ServiceUnavailable
    faulty_endpoint.failures = 1_000
    faulty_endpoint.error = (503, "ServiceUnavailableException")
    client = client_for(faulty_endpoint.url)
    group = f"unavailable-{uuid.uuid4().hex}"
    logger, handler, reports = make_handler(client, group, max_retries=2)

    # WHEN a batch is logged and flushed
    for number in range(3):
        logger.info("event %d", number)
    handler.flush()

    # THEN it was tried 1 + max_retries times, then given up on and reported
    assert faulty_endpoint.put_calls == 3
    assert handler.failed_events == 3
    assert len(reports) == 1
    assert "gave up on 3 events after 3 attempt(s): ServiceUnavailableException" in reports[0]

    # WHEN another batch follows while the endpoint is still down
    logger.info("event 3")
    handler.flush()

    # THEN it gets a single attempt, so a dead endpoint does not hold the job up
    assert faulty_endpoint.put_calls == 4
    assert handler.failed_events == 4

    # WHEN the endpoint recovers
    faulty_endpoint.failures = 0
    logger.info("event 4")
    handler.flush()

    # THEN delivery resumes
    events = read_back(client, group, "stream-1")
    assert [json.loads(event["message"])["message"] for event in events] == ["event 4"]


def test_a_refused_connection_is_reported_on_the_console_and_logging_goes_on(capsys):
    # GIVEN the job logger with a CloudWatch target whose endpoint refuses connections
    config = bundled_defaults()
    config["logging"]["console"]["format"] = "json"
    config["logging"]["spark"]["enabled"] = False
    config["logging"]["cloudwatch"].update(
        {
            "enabled": True,
            "max_retries": 2,
            "retry_base_seconds": 0.01,
            "flush_interval_seconds": 0.1,
        }
    )
    config["aws"].update({"region": "us-east-1", "endpoint_url": "http://127.0.0.1:9"})
    log = build_logger(config["logging"], config["aws"], "datalake_job", None)
    try:
        # WHEN events are logged and flushed
        log.info("first")
        flush_logger(log)
        log.info("second")
        flush_logger(log)
    finally:
        for handler in list(log.handlers):
            log.removeHandler(handler)
            handler.close()

    # THEN the console has both events and the give-up notices, and nothing was raised
    err = capsys.readouterr().err
    assert [json.loads(line)["message"] for line in err.splitlines() if line.startswith("{")] == [
        "first",
        "second",
    ]
    assert "gave up on 1 events after 3 attempt(s): EndpointConnectionError" in err
    assert "gave up on 1 events after 1 attempt(s): EndpointConnectionError" in err
    assert "0 events delivered, 2 given up on" in err
    assert logging.getLogger(LOGGER_NAME).handlers == []
