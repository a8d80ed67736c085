"""AWS CloudWatch Logs as a log target: batched, in time order, retried, never in the job's way.

``CloudWatchLogsHandler.emit`` only appends the formatted event to an in-memory buffer; a
background thread sends the buffer with ``PutLogEvents`` when it is full (service limits),
when its oldest event reaches the flush interval, on ``flush()`` and at exit (``close()``,
which ``logging.shutdown`` calls). Throttling, service and connection errors are retried with
exponential backoff and full jitter; a batch that still fails is given up on and reported on
stderr. Once a batch was given up on, later batches get a single attempt until one succeeds,
so a dead endpoint costs the job at most ``close_timeout_seconds`` at exit.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

# PutLogEvents limits: events and bytes per batch (each event counts its UTF-8 message plus
# 26 bytes), the largest event, and the longest time span one batch may cover.
MAX_BATCH_EVENTS = 10_000
MAX_BATCH_BYTES = 1_048_576
EVENT_OVERHEAD_BYTES = 26
MAX_EVENT_BYTES = 262_144
MAX_BATCH_SPAN_MILLIS = 24 * 60 * 60 * 1000
MAX_BACKOFF_SECONDS = 20.0
TRUNCATED_MARK = " ...[truncated]"
RETRYABLE_ERROR_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "ServiceUnavailableException",
        "ServiceUnavailable",
        "InternalFailure",
        "InternalServerError",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
NOT_FOUND = "ResourceNotFoundException"
ALREADY_EXISTS = "ResourceAlreadyExistsException"


class LogEvent(NamedTuple):
    """One CloudWatch event: milliseconds since the epoch, the message, its billed size."""

    timestamp: int
    message: str
    size: int


def log_event(timestamp_millis: int, message: str) -> LogEvent:
    """An event, its message cut (on a character boundary) to fit the per-event limit."""
    data = message.encode("utf-8")
    room = MAX_EVENT_BYTES - EVENT_OVERHEAD_BYTES
    if len(data) > room:
        mark = TRUNCATED_MARK.encode("utf-8")
        data = data[: room - len(mark)].decode("utf-8", errors="ignore").encode("utf-8") + mark
        message = data.decode("utf-8")
    return LogEvent(timestamp_millis, message, len(data) + EVENT_OVERHEAD_BYTES)


def plan_batches(events: Iterable[LogEvent]) -> list[list[LogEvent]]:
    """Events in time order, cut into batches that each fit PutLogEvents' limits."""
    batches: list[list[LogEvent]] = []
    batch: list[LogEvent] = []
    batch_bytes = 0
    for event in sorted(events, key=lambda item: item.timestamp):
        if batch and (
            len(batch) == MAX_BATCH_EVENTS
            or batch_bytes + event.size > MAX_BATCH_BYTES
            or event.timestamp - batch[0].timestamp >= MAX_BATCH_SPAN_MILLIS
        ):
            batches.append(batch)
            batch, batch_bytes = [], 0
        batch.append(event)
        batch_bytes += event.size
    if batch:
        batches.append(batch)
    return batches


def logs_client(aws_config: Mapping[str, Any], timeout_seconds: float) -> Any:
    """A CloudWatch Logs client from the ``aws`` config section (region, profile,
    endpoint_url; "" means the SDK's default). botocore's own retries are off: the handler
    retries itself, with backoff it controls."""
    session = boto3.session.Session(
        profile_name=aws_config["profile"] or None, region_name=aws_config["region"] or None
    )
    return session.client(
        "logs",
        endpoint_url=aws_config["endpoint_url"] or None,
        config=Config(
            connect_timeout=timeout_seconds,
            read_timeout=timeout_seconds,
            retries={"total_max_attempts": 1, "mode": "standard"},
        ),
    )


def error_code(error: Exception) -> str:
    """The service's error code of a failed call ("" when the call never got an answer)."""
    return error.response.get("Error", {}).get("Code", "") if isinstance(error, ClientError) else ""


def is_retryable(error: Exception) -> bool:
    """Throttling, service-side and connection failures are worth another attempt."""
    if isinstance(error, ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error_code(error) in RETRYABLE_ERROR_CODES or status >= 500
    return isinstance(error, (BotoConnectionError, HTTPClientError))


def backoff_seconds(attempt: int, base_seconds: float) -> float:
    """Full-jitter exponential backoff before retry number ``attempt`` (0-based)."""
    return random.uniform(0, min(MAX_BACKOFF_SECONDS, base_seconds * 2**attempt))


class CloudWatchLogsHandler(logging.Handler):
    """Sends formatted records to one CloudWatch Logs stream from a background thread."""

    def __init__(
        self,
        client: Any,
        log_group: str,
        stream_name: Callable[[], str],
        create_missing: bool,
        flush_interval_seconds: float,
        max_retries: int,
        retry_base_seconds: float,
        close_timeout_seconds: float,
        max_queued_events: int,
        report: Callable[[str], None],
    ) -> None:
        """``stream_name`` is called once, before the first send, so the stream can be named
        after the run context bound after the logger was built."""
        super().__init__()
        self.client = client
        self.log_group = log_group
        self.log_stream = ""
        self._stream_name = stream_name
        self._create_missing = create_missing
        self._flush_interval = flush_interval_seconds
        self._max_retries = max_retries
        self._retry_base = retry_base_seconds
        self._close_timeout = close_timeout_seconds
        self._max_queued = max_queued_events
        self._report = report
        self._cond = threading.Condition()
        self._buffer: list[LogEvent] = []
        self._buffer_bytes = 0
        self._oldest_at = 0.0  # monotonic time the oldest buffered event arrived
        self._unfinished = 0  # accepted events not yet delivered or given up on
        self._flush_requested = False
        self._closing = False
        self._destination_ready = False
        self._healthy = True
        self.delivered_events = 0
        self.failed_events = 0
        self.dropped_events = 0
        self._worker = threading.Thread(target=self._run, name="cloudwatch-logs", daemon=True)
        self._worker.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            event = log_event(int(record.created * 1000), self.format(record))
        except Exception:
            self.handleError(record)
            return
        with self._cond:
            if self._closing or self._unfinished >= self._max_queued:
                self.dropped_events += 1
                return
            if not self._buffer:
                self._oldest_at = time.monotonic()
            self._buffer.append(event)
            self._buffer_bytes += event.size
            self._unfinished += 1
            if len(self._buffer) == 1 or self._buffer_full():
                self._cond.notify_all()

    def flush(self) -> None:
        """Send what is buffered now and wait (at most ``close_timeout_seconds``) until every
        event accepted so far is delivered or given up on."""
        with self._cond:
            if self._closing:
                return
            self._flush_requested = True
            self._cond.notify_all()
            done = self._cond.wait_for(lambda: self._unfinished == 0, self._close_timeout)
            self._flush_requested = False
        if not done:
            self._report(f"CloudWatch Logs: flush timed out after {self._close_timeout}s")

    def close(self) -> None:
        """Send what is left, stop the thread (waiting at most ``close_timeout_seconds``) and
        report events that were not delivered."""
        with self._cond:
            already_closing, self._closing = self._closing, True
            self._cond.notify_all()
        if already_closing:
            return
        self._worker.join(self._close_timeout)
        with self._cond:
            lost = self._unfinished
        if lost or self.failed_events or self.dropped_events:
            self._report(
                f"CloudWatch Logs {self.log_group}/{self.log_stream}: "
                f"{self.delivered_events} events delivered, {self.failed_events} given up on, "
                f"{self.dropped_events} dropped (buffer full or closed), "
                f"{lost} still unsent at exit"
            )
        super().close()

    def _buffer_full(self) -> bool:
        return len(self._buffer) >= MAX_BATCH_EVENTS or self._buffer_bytes >= MAX_BATCH_BYTES

    def _due(self) -> bool:
        """Whether the buffer should be sent now: full, old enough, flushed or closing."""
        return bool(self._buffer) and (
            self._closing
            or self._flush_requested
            or self._buffer_full()
            or time.monotonic() - self._oldest_at >= self._flush_interval
        )

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._due():
                    if self._closing and not self._buffer:
                        return
                    wait = None
                    if self._buffer:
                        wait = max(0.0, self._oldest_at + self._flush_interval - time.monotonic())
                    self._cond.wait(wait)
                events, self._buffer, self._buffer_bytes = self._buffer, [], 0
                self._flush_requested = False
            for batch in plan_batches(events):
                try:
                    self._send(batch)
                except Exception as error:
                    self.failed_events += len(batch)
                    self._report(f"CloudWatch Logs: unexpected error, batch dropped: {error!r}")
                with self._cond:
                    self._unfinished -= len(batch)
                    self._cond.notify_all()

    def _ensure_destination(self) -> None:
        """Name the stream once; create group and stream when configured to."""
        if not self.log_stream:
            self.log_stream = self._stream_name()
        if self._destination_ready or not self._create_missing:
            return
        for create, arguments in (
            (self.client.create_log_group, {"logGroupName": self.log_group}),
            (
                self.client.create_log_stream,
                {"logGroupName": self.log_group, "logStreamName": self.log_stream},
            ),
        ):
            try:
                create(**arguments)
            except ClientError as error:
                if error_code(error) != ALREADY_EXISTS:
                    raise
        self._destination_ready = True

    def _send(self, batch: list[LogEvent]) -> None:
        """PutLogEvents with retries; gives up (and reports) after the last attempt."""
        attempts = self._max_retries + 1 if self._healthy else 1
        error: Exception | None = None
        for attempt in range(attempts):
            if attempt:
                time.sleep(backoff_seconds(attempt - 1, self._retry_base))
            try:
                self._ensure_destination()
                response = self.client.put_log_events(
                    logGroupName=self.log_group,
                    logStreamName=self.log_stream,
                    logEvents=[
                        {"timestamp": event.timestamp, "message": event.message} for event in batch
                    ],
                )
            except (ClientError, BotoCoreError) as caught:
                error = caught
                if error_code(caught) == NOT_FOUND:  # deleted meanwhile: create again, or give up
                    self._destination_ready = False
                    if self._create_missing:
                        continue
                if not is_retryable(caught):
                    break
                continue
            self._healthy = True
            self.delivered_events += len(batch)
            rejected = response.get("rejectedLogEventsInfo")
            if rejected:
                self._report(
                    "CloudWatch Logs rejected some events "
                    f"(too old, too new or expired): {rejected}"
                )
            return
        self._healthy = False
        self.failed_events += len(batch)
        self._report(
            f"CloudWatch Logs: gave up on {len(batch)} events after {attempt + 1} attempt(s): "
            f"{type(error).__name__}: {error}"
        )
