"""Exit codes of a run, and their names: the job returns them, ``dependencies/submit.py``
passes them on (and adds ``EXIT_LOCK_BUSY``, for the lock it holds around spark-submit)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_CONFIG = 2
EXIT_BAD_INPUT = 3
EXIT_INPUT_NOT_READY = 4
EXIT_LOCK_BUSY = 5
EXIT_CODE_NAMES = {
    EXIT_OK: "ok",
    EXIT_FAILED: "run failed",
    EXIT_BAD_CONFIG: "bad config",
    EXIT_BAD_INPUT: "bad input",
    EXIT_INPUT_NOT_READY: "input not ready",
    EXIT_LOCK_BUSY: "lock busy",
}
