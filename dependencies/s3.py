"""AWS through boto3: the one client factory, and the S3 calls the job makes.

The job reads its config from an ``s3://`` URL, checks completion markers, lists a table's
objects and uploads its run report. Every failure becomes an :class:`AwsError` with a one-line
message (no such bucket, access denied, throttled, unreachable endpoint, no credentials);
throttled and transient calls are retried by botocore's ``standard`` retry mode, up to
``aws.max_attempts`` attempts in all.

botocore reads its service models from files beside its modules. Imported from
``packages.zip`` (``spark-submit --py-files``), those files are inside the zip where botocore
cannot open them, so the factory extracts the few a client needs to a temporary directory.
"""

from __future__ import annotations

import atexit
import json
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3
import botocore
import botocore.session
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    ProfileNotFound,
)

S3_SCHEMES = ("s3", "s3a")
THROTTLING_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
    }
)
DENIED_CODES = frozenset(
    {"AccessDenied", "403", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch"}
)
REPORT_FILE = "report.json"


class AwsError(RuntimeError):
    """An AWS call failed; the message says what and where in one line."""


@dataclass(frozen=True)
class S3Object:
    """One object of a listing: its URL and size in bytes."""

    url: str
    size: int


def is_s3_url(path: str) -> bool:
    """Whether ``path`` is an ``s3://`` (or ``s3a://``) URL."""
    return urlparse(path).scheme in S3_SCHEMES


def split_url(url: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> ``("bucket", "key")``."""
    parsed = urlparse(url)
    if parsed.scheme not in S3_SCHEMES or not parsed.netloc:
        raise AwsError(f"not an S3 URL: {url}")
    return parsed.netloc, parsed.path.lstrip("/")


def client(aws_config: Mapping[str, Any], service: str = "s3") -> Any:
    """A boto3 client for ``service`` from the ``aws`` config section: ``region``, ``profile``
    and ``endpoint_url`` ("" leaves each to boto3's usual lookup: environment, ~/.aws,
    instance role), with standard retries up to ``max_attempts`` attempts."""
    core = botocore.session.get_session()
    zipped_data = _data_outside_zip(service)
    if zipped_data is not None:
        core.set_config_variable("data_path", str(zipped_data))
        if core.get_config_variable("ca_bundle") is None:
            core.set_config_variable("ca_bundle", str(zipped_data / "cacert.pem"))
    try:
        session = boto3.session.Session(
            profile_name=aws_config["profile"] or None,
            region_name=aws_config["region"] or None,
            botocore_session=core,
        )
        return session.client(
            service,
            endpoint_url=aws_config["endpoint_url"] or None,
            config=Config(
                retries={"mode": "standard", "total_max_attempts": aws_config["max_attempts"]}
            ),
        )
    except ProfileNotFound:
        raise AwsError(
            f"aws.profile {aws_config['profile']!r} is not defined in the AWS config files"
        ) from None
    except BotoCoreError as error:
        raise AwsError(f"cannot create the {service} client: {error}") from None


def read_text(s3: Any, url: str) -> str:
    """The UTF-8 text of the object at ``url``."""
    bucket, key = split_url(url)
    with explained(url):
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")


def object_exists(s3: Any, url: str) -> bool:
    """Whether the object at ``url`` exists (a missing bucket is an error, not ``False``)."""
    bucket, key = split_url(url)
    with explained(url):
        listing = s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
    return any(entry["Key"] == key for entry in listing.get("Contents", []))


def list_objects(s3: Any, url: str, suffix: str = "", pattern: str | None = None) -> list[S3Object]:
    """Every object whose key starts with ``url``'s key (the prefix), ends with ``suffix`` and,
    when given, matches the regular expression ``pattern`` (searched in the key), with sizes."""
    bucket, prefix = split_url(url)
    matches = re.compile(pattern).search if pattern else None
    found = []
    with explained(url):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for entry in page.get("Contents", []):
                key = entry["Key"]
                if key.endswith(suffix) and (matches is None or matches(key)):
                    found.append(S3Object(f"s3://{bucket}/{key}", entry["Size"]))
    return found


def upload_text(s3: Any, url: str, text: str, content_type: str = "application/json") -> None:
    """Write ``text`` (UTF-8) to the object at ``url``."""
    bucket, key = split_url(url)
    with explained(url):
        s3.put_object(Bucket=bucket, Key=key, Body=text.encode("utf-8"), ContentType=content_type)


def upload_report(
    aws_config: Mapping[str, Any], prefix_url: str, run_date: date, report: Mapping[str, Any]
) -> str:
    """Upload the run report to ``<prefix_url>/run_date=D/report.json``; return that URL."""
    url = f"{prefix_url.rstrip('/')}/run_date={run_date.isoformat()}/{REPORT_FILE}"
    upload_text(client(aws_config), url, json.dumps(report, indent=2, sort_keys=True))
    return url


@contextmanager
def explained(url: str) -> Iterator[None]:
    """Turn botocore's errors inside the block into an :class:`AwsError` about ``url``."""
    try:
        yield
    except ClientError as error:
        raise AwsError(_client_error_message(error, url)) from None
    except NoCredentialsError:
        raise AwsError(
            f"{url}: no AWS credentials (set aws.profile, the environment or an instance role)"
        ) from None
    except BotoCoreError as error:
        raise AwsError(f"{url}: {error}") from None


def _client_error_message(error: ClientError, url: str) -> str:
    details = error.response.get("Error", {})
    code = str(details.get("Code", ""))
    message = details.get("Message", "") or str(error)
    attempts = error.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1
    bucket, _ = split_url(url)
    if code == "NoSuchBucket":
        return f"{url}: no such bucket: {bucket}"
    if code in ("NoSuchKey", "404"):
        return f"{url}: no such object"
    if code in DENIED_CODES:
        return (
            f"{url}: access denied ({code}: {message}); check the credentials and the bucket policy"
        )
    if code in THROTTLING_CODES:
        return f"{url}: throttled by S3 ({code}) after {attempts} attempts; try again later"
    return f"{url}: {code or 'error'}: {message}"


_extracted: dict[str, Path] = {}


def _data_outside_zip(service: str) -> Path | None:
    """When botocore was imported from a zip: a directory with the files a ``service`` client
    reads from disk (the shared data files, the service's models, the CA bundle); else None."""
    root = Path(botocore.__file__).parent
    if root.is_dir():
        return None
    if service not in _extracted:
        archive = next(parent for parent in root.parents if parent.is_file())
        inner = root.relative_to(archive).as_posix()
        target = Path(tempfile.mkdtemp(prefix="datalake-botocore-"))
        atexit.register(shutil.rmtree, target, True)
        with zipfile.ZipFile(archive) as zipped:
            for name in zipped.namelist():
                relative = name.removeprefix(f"{inner}/")
                data = relative.removeprefix("data/")
                if relative == "cacert.pem":
                    destination = target / relative
                elif (
                    relative.startswith("data/")
                    and not name.endswith("/")
                    and ("/" not in data or data.startswith(f"{service}/"))
                ):
                    destination = target / data
                else:
                    continue
                destination.parent.mkdir(parents=True, exist_ok=True)
                destination.write_bytes(zipped.read(name))
        _extracted[service] = target
    return _extracted[service]
