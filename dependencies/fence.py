"""The lock object of an S3 output, and fencing: a run that lost it commits nothing more.

The run lock of an S3 output (``dependencies/submit.py``) is an object whose record names its
holder with a ``token`` of its own. ``make submit`` hands the lock's URL and token to the job
as Spark settings (:data:`LOCK_URL_SETTING`, :data:`LOCK_TOKEN_SETTING`, in its private
properties file: they reach the driver in every deploy mode); the job checks that the
object still carries that token right before each commit (the readings' ledger store, each
output table, the report) and before deleting anything under the output. If another run has
taken the lock over meanwhile (the submit process was paused or killed past the lock's time
to live), the check raises :class:`LockLost` and the run stops without writing more.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from dependencies import s3

LOCK_URL_SETTING = "spark.datalake.lock.url"
LOCK_TOKEN_SETTING = "spark.datalake.lock.token"
LOCK_SETTINGS = (LOCK_URL_SETTING, LOCK_TOKEN_SETTING)
LOCK_OBJECT = "_lock.json"
# S3's answers to a conditional write on the lock object that is not ours (any more): the
# condition failed, a concurrent conditional write won, or the object is gone.
NOT_OURS_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey"})


class S3LockObject:
    """The lock object of an S3 output: conditional puts, reads and deletes of its record."""

    def __init__(self, client: Any, url: str) -> None:
        self.client = client
        self.url = url
        self.bucket, self.key = s3.split_url(self.url)

    def put(self, body: bytes, **condition: str) -> str | None:
        """Write ``body`` if ``condition`` (``IfNoneMatch``/``IfMatch``) holds; its new ETag,
        or None when it does not (another run holds the lock, or took it over)."""
        with s3.explained(self.url):
            try:
                return self.client.put_object(
                    Bucket=self.bucket,
                    Key=self.key,
                    Body=body,
                    ContentType="application/json",
                    **condition,
                )["ETag"]
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") in NOT_OURS_CODES:
                    return None
                raise

    def read(self) -> tuple[dict[str, str], bytes, str] | None:
        """The holder's record (empty if unreadable), the body and its ETag; None if there is
        no lock object (any more)."""
        with s3.explained(self.url):
            try:
                found = self.client.get_object(Bucket=self.bucket, Key=self.key)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") in NOT_OURS_CODES:
                    return None
                raise
            body = found["Body"].read()
        try:
            record = json.loads(body)
        except ValueError:
            record = {}
        return (record if isinstance(record, dict) else {}), body, found["ETag"]

    def delete(self, etag: str) -> None:
        """Delete the object if it is still the one with ``etag`` (else it is not ours)."""
        with s3.explained(self.url):
            try:
                self.client.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=etag)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") not in NOT_OURS_CODES:
                    raise


def lock_url(output_path: str) -> str:
    """The URL of the lock object of an S3 output."""
    return f"{output_path.rstrip('/')}/{LOCK_OBJECT}"


class LockLost(RuntimeError):
    """Another run holds the lock this run was started under."""


@dataclass(frozen=True)
class Fence:
    """The lock a run holds (``url`` and ``token``), or none (:data:`NO_FENCE`: a local
    output, whose flock the operating system keeps for the run)."""

    url: str = ""
    token: str = ""
    client: Any = None

    @classmethod
    def from_settings(cls, settings: Mapping[str, str], aws_config: Mapping[str, Any]) -> Fence:
        """The fence of the lock named in ``settings``, or :data:`NO_FENCE` without one."""
        url, token = settings.get(LOCK_URL_SETTING, ""), settings.get(LOCK_TOKEN_SETTING, "")
        if not url or not token:
            return NO_FENCE
        return cls(url, token, s3.client(aws_config))

    def holder(self) -> str | None:
        """The token the lock object carries now (None when it is gone or unreadable)."""
        held = S3LockObject(self.client, self.url).read()
        return held[0].get("token") if held else None

    def check(self, before: str) -> None:
        """Raise :class:`LockLost` unless this run still holds its lock; ``before`` says what
        it was about to do."""
        if self.client is not None and self.holder() != self.token:
            raise LockLost(
                f"lost the lock {self.url} to another run before {before}: "
                "this run commits nothing more"
            )

    def holds(self) -> bool:
        """Whether this run still holds its lock (never raises: when in doubt, it does not)."""
        try:
            self.check("cleaning up")
        except (LockLost, s3.AwsError):
            return False
        return True


NO_FENCE = Fence()
