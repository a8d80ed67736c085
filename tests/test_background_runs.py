"""The suite's long runs in the background (tests/conftest.py): a run that cannot even start
fails the tests that read it, not the suite's first test, nor the others."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import started


def cluster_down(request: pytest.FixtureRequest, pool: ThreadPoolExecutor) -> None:
    pytest.fail("the Spark cluster did not come up")


def bucket_missing(request: pytest.FixtureRequest, pool: ThreadPoolExecutor) -> None:
    raise RuntimeError("NoSuchBucket")


@pytest.mark.parametrize(
    ("start", "failure"),
    [(cluster_down, pytest.fail.Exception), (bucket_missing, RuntimeError)],
)
def test_a_run_that_cannot_start_hands_its_failure_to_its_tests(start, failure) -> None:
    # GIVEN a module's start of its run that fails before submitting it
    # WHEN the suite starts it
    with ThreadPoolExecutor(1) as pool:
        future = started(start, None, pool)  # type: ignore[arg-type]
    # THEN starting it raised nothing, and its future holds the failure for its tests
    with pytest.raises(failure):
        future.result()
