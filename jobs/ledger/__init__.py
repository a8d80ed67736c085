"""The readings' ledger: the one pass over the readings, kept between runs.

:mod:`~jobs.ledger.plan` decides what a run computes (no Spark), :mod:`~jobs.ledger.compute`
computes a block of days' rows and states, :mod:`~jobs.ledger.store` keeps them as Delta
tables, and :mod:`~jobs.ledger.update` runs the plan: :func:`readings_ledger`.
"""

from jobs.ledger.compute import Inputs, block_rows, checked_readings, unstored_ledger
from jobs.ledger.plan import AFTER_RUN_DATE
from jobs.ledger.store import STORE
from jobs.ledger.update import LEDGER_VERSION, readings_ledger

__all__ = [
    "AFTER_RUN_DATE",
    "LEDGER_VERSION",
    "STORE",
    "Inputs",
    "block_rows",
    "checked_readings",
    "readings_ledger",
    "unstored_ledger",
]
