"""dependencies/s3.py against moto's server on 127.0.0.1: the client factory, config from an
s3:// URL, markers, listings, report upload, and clear errors (no such bucket, access denied,
throttled)."""

from __future__ import annotations

import http.client
import json
import threading
import urllib.request
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlparse

import pytest
from conftest import moto_command, start_server

from dependencies import s3
from dependencies.config import ConfigError, find_config_file, load_config

BUCKET = "datalake-test"
SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message><RequestId>test</RequestId></Error>"
)


@pytest.fixture
def bucket(moto_aws_config: dict[str, Any]) -> Iterator[Any]:
    """An empty bucket on the moto server; its client. Removed after the test."""
    client = s3.client(moto_aws_config)
    client.create_bucket(Bucket=BUCKET)
    yield client
    for entry in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=entry["Key"])
    client.delete_bucket(Bucket=BUCKET)


def write_aws_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, profile: str, keys: dict[str, str], region: str
) -> None:
    """Point boto3 at an AWS config and credentials file holding ``profile``."""
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[{profile}]\n"
        f"aws_access_key_id = {keys['AccessKeyId']}\n"
        f"aws_secret_access_key = {keys['SecretAccessKey']}\n"
    )
    config = tmp_path / "config"
    config.write_text(f"[profile {profile}]\nregion = {region}\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))


def test_client_honours_region_profile_endpoint_and_attempts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moto_server: str
) -> None:
    # GIVEN a profile with its own keys and region, and a config naming it and the endpoint
    keys = {"AccessKeyId": "AKIDPROFILEKEY", "SecretAccessKey": "profile-secret"}
    write_aws_files(tmp_path, monkeypatch, "datalake-test", keys, "eu-west-3")
    monkeypatch.delenv("AWS_DEFAULT_REGION")  # the environment would outrank the profile
    aws = {"region": "", "profile": "datalake-test", "endpoint_url": moto_server, "max_attempts": 7}

    # WHEN clients are made from it, with and without a region of its own
    from_profile = s3.client(aws)
    with_region = s3.client({**aws, "region": "ap-south-1"})

    # THEN the profile gives keys and region, the config's region wins, the endpoint and the
    # retry policy apply, and the client really talks to that endpoint
    assert from_profile._request_signer._credentials.access_key == "AKIDPROFILEKEY"
    assert from_profile.meta.region_name == "eu-west-3"
    assert with_region.meta.region_name == "ap-south-1"
    assert from_profile.meta.endpoint_url == moto_server
    assert from_profile.meta.config.retries == {"mode": "standard", "total_max_attempts": 7}
    from_profile.create_bucket(
        Bucket="profile-bucket", CreateBucketConfiguration={"LocationConstraint": "eu-west-3"}
    )
    assert "profile-bucket" in [b["Name"] for b in with_region.list_buckets()["Buckets"]]
    from_profile.delete_bucket(Bucket="profile-bucket")


def test_an_unknown_profile_is_a_clear_error(moto_aws_config: dict[str, Any]) -> None:
    # GIVEN a profile that no AWS config file defines
    # WHEN a client is made THEN the error names it
    with pytest.raises(s3.AwsError, match=r"aws.profile 'nobody' is not defined"):
        s3.client({**moto_aws_config, "profile": "nobody"})


def test_config_is_read_from_an_s3_url(
    bucket: Any, write_config: Any, monkeypatch: pytest.MonkeyPatch, moto_server: str
) -> None:
    # GIVEN a job config uploaded to S3, and boto3's endpoint from the environment
    local = write_config({"window_days": 7})
    bucket.put_object(Bucket=BUCKET, Key="configs/job_config.json", Body=local.read_bytes())
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    url = f"s3://{BUCKET}/configs/job_config.json"

    # WHEN the job locates and loads it by URL
    config = load_config(find_config_file(url, None))

    # THEN it is the same config as from the local file; a missing one is a clear error
    assert config == load_config(str(local))
    assert config["window_days"] == 7
    with pytest.raises(
        ConfigError, match=rf"cannot read config: s3://{BUCKET}/missing.json: no such object"
    ):
        load_config(f"s3://{BUCKET}/missing.json")


def test_markers_and_listings(bucket: Any) -> None:
    # GIVEN a table with two part files, a marker, and a neighbour table sharing the prefix
    bucket.put_object(Bucket=BUCKET, Key="in/measurements/part-0.csv", Body=b"x" * 10)
    bucket.put_object(Bucket=BUCKET, Key="in/measurements/part-1.csv", Body=b"x" * 25)
    bucket.put_object(Bucket=BUCKET, Key="in/measurements/_SUCCESS", Body=b"")
    bucket.put_object(Bucket=BUCKET, Key="in/measurements_old/part-0.csv", Body=b"x" * 3)

    # WHEN markers are checked and the table is listed with suffix and pattern filters
    table = f"s3://{BUCKET}/in/measurements/"
    csv_files = s3.list_objects(bucket, table, suffix=".csv")
    second = s3.list_objects(bucket, table, pattern=r"part-1\.csv$")
    everything = s3.list_objects(bucket, f"s3://{BUCKET}/in/measurements")

    # THEN exact keys only, with their sizes
    assert s3.object_exists(bucket, f"{table}_SUCCESS")
    assert not s3.object_exists(bucket, f"s3://{BUCKET}/in/measurements_old/_SUCCESS")
    assert not s3.object_exists(bucket, f"s3://{BUCKET}/in/measurements")  # a prefix, not an object
    assert csv_files == [
        s3.S3Object(f"{table}part-0.csv", 10),
        s3.S3Object(f"{table}part-1.csv", 25),
    ]
    assert second == [s3.S3Object(f"{table}part-1.csv", 25)]
    assert len(everything) == 4


def test_report_upload(bucket: Any, moto_aws_config: dict[str, Any]) -> None:
    # GIVEN a run report
    report = {"run_id": "2026-11-15-abc", "alerts": 9, "counts": {"device": {"read": 39}}}

    # WHEN it is uploaded under a prefix
    url = s3.upload_report(moto_aws_config, f"s3://{BUCKET}/reports/", date(2026, 11, 15), report)

    # THEN it lands in the run date's partition, as JSON
    assert url == f"s3://{BUCKET}/reports/run_date=2026-11-15/report.json"
    assert json.loads(s3.read_text(bucket, url)) == report


def test_a_missing_bucket_is_a_clear_error(moto_aws_config: dict[str, Any]) -> None:
    # GIVEN no bucket "absent-bucket"
    client = s3.client(moto_aws_config)
    # WHEN a marker is checked or an object read THEN the message says the bucket is missing
    with pytest.raises(
        s3.AwsError, match=r"s3://absent-bucket/t/_SUCCESS: no such bucket: absent-bucket"
    ):
        s3.object_exists(client, "s3://absent-bucket/t/_SUCCESS")
    with pytest.raises(s3.AwsError, match="no such bucket: absent-bucket"):
        s3.read_text(client, "s3://absent-bucket/config.json")


@pytest.fixture(scope="module")
def moto_with_iam(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """A second moto server that enforces IAM, with a bucket holding ``config.json`` and a user
    allowed only to list it; yields the URL and that user's keys."""
    server = start_server(
        moto_command, "/moto-api/", tmp_path_factory.mktemp("moto_iam") / "moto_server.log"
    )
    url = server.url
    try:
        admin = {"region": "us-east-1", "profile": "", "endpoint_url": url, "max_attempts": 1}
        iam = s3.client(admin, "iam")
        iam.create_user(UserName="lister")
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}],
        }
        iam.put_user_policy(
            UserName="lister", PolicyName="list-only", PolicyDocument=json.dumps(policy)
        )
        keys = iam.create_access_key(UserName="lister")["AccessKey"]
        root = s3.client(admin)
        root.create_bucket(Bucket=BUCKET)
        root.put_object(Bucket=BUCKET, Key="config.json", Body=b"{}")
        enforce_iam = urllib.request.Request(
            f"{url}/moto-api/reset-auth",
            data=b"0",
            headers={"Content-Type": "text/plain"},
            method="POST",
        )
        urllib.request.urlopen(enforce_iam).close()
        yield url, keys
    finally:
        server.stop()


def test_access_denied_is_a_clear_error(
    moto_with_iam: tuple[str, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a profile whose user may list the bucket but not read its objects
    url, keys = moto_with_iam
    write_aws_files(tmp_path, monkeypatch, "lister", keys, "us-east-1")
    client = s3.client({"region": "", "profile": "lister", "endpoint_url": url, "max_attempts": 1})

    # WHEN it lists and then reads
    # THEN listing works and reading is refused with a message saying so
    assert s3.object_exists(client, f"s3://{BUCKET}/config.json")
    with pytest.raises(
        s3.AwsError, match=rf"s3://{BUCKET}/config.json: access denied \(AccessDenied"
    ):
        s3.read_text(client, f"s3://{BUCKET}/config.json")


class ThrottlingProxy:
    """An HTTP proxy in front of the moto server that answers the first ``throttled`` requests
    with S3's ``503 SlowDown`` and forwards every other request."""

    def __init__(self, upstream: str, throttled: int) -> None:
        self.requests = 0
        self.throttled = throttled
        target = urlparse(upstream)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def forward(self) -> None:
                proxy.requests += 1
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy.requests <= proxy.throttled:
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(SLOW_DOWN)))
                    self.end_headers()
                    self.wfile.write(SLOW_DOWN)
                    return
                connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                connection.request(self.command, self.path, body=body, headers=dict(self.headers))
                response = connection.getresponse()
                payload = response.read()
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                connection.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = forward

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Self:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_throttled_calls_are_retried(
    bucket: Any, moto_aws_config: dict[str, Any], moto_server: str
) -> None:
    # GIVEN an object, reached through a proxy that throttles the first two requests
    bucket.put_object(Bucket=BUCKET, Key="config.json", Body=b'{"a": 1}')
    with ThrottlingProxy(moto_server, throttled=2) as proxy:
        client = s3.client({**moto_aws_config, "endpoint_url": proxy.url, "max_attempts": 3})

        # WHEN the object is read
        text = s3.read_text(client, f"s3://{BUCKET}/config.json")

    # THEN the third attempt got it
    assert text == '{"a": 1}'
    assert proxy.requests == 3


def test_throttling_beyond_the_attempts_is_a_clear_error(
    bucket: Any, moto_aws_config: dict[str, Any], moto_server: str
) -> None:
    # GIVEN a proxy that throttles every request, and two attempts allowed
    with ThrottlingProxy(moto_server, throttled=1000) as proxy:
        client = s3.client({**moto_aws_config, "endpoint_url": proxy.url, "max_attempts": 2})

        # WHEN a marker is checked THEN the error says it was throttled, after how many attempts
        with pytest.raises(s3.AwsError, match=r"throttled by S3 \(SlowDown\) after 2 attempts"):
            s3.object_exists(client, f"s3://{BUCKET}/t/_SUCCESS")
    assert proxy.requests == 2
