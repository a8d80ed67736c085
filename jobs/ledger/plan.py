"""What a run computes of the readings' ledger, decided without Spark.

Given the day partitions a run reads, what the store recorded of each day (:class:`StoredDay`)
and what the day is derived from now (:class:`Provenance`), :func:`plan` lists the blocks to
compute, in order:

- consecutive days that cannot be reused at all (not in the store, another ledger version
  or usage settings, changed input files, ``--full-refresh``) are computed for every
  component, in one block; so are the days after the run date, in a block of their own
  (read for this run only, never stored);
- consecutive reusable days whose fleet changed (component rows, install periods) since
  they were stored are one block for the components that changed: those whose fingerprint
  no longer matches on any of its days (and, on its first day, those whose entering state
  moved), their chains computed through the block from the first day one of them changed;
  a day whose recorded entering state is not its predecessor's (a run killed between them)
  begins a block of its own;
- any other reusable day that follows a computed day, or whose recorded entering state is
  not its predecessor's, is a block of one day for the components whose entering state
  moved. Finding the components takes Spark; a block whose set is empty is reused after all.

Every other day is reused as stored.
"""

from __future__ import annotations

from dataclasses import dataclass

# A block's components: every one, or only those whose rows can have changed.
ALL = "all"
CHANGED = "changed"
NOT_STORED = "not in the store"
SETTINGS_CHANGED = "the ledger's version or the usage settings changed"
FILES_CHANGED = "its input files changed (a late or rewritten file)"
FULL_REFRESH = "--full-refresh"
FLEET_CHANGED = "their component or install rows changed"
STATE_MOVED = "an earlier day changed their state"
# Why the day after the run date is always computed (and never stored).
AFTER_RUN_DATE = "the day after the run date: only its readings up to the window's end count"

# A day's input files: (path below the day's partition, size, modification time in ms).
Files = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class Provenance:
    """What a day's rows are derived from, besides its readings' files: the ledger's
    version with the usage settings that shape its rows (``shaping``, a hash), and the
    fleet's component rows and install periods (``fleet``, one number)."""

    shaping: str
    fleet: int


@dataclass(frozen=True)
class StoredDay:
    """What the store recorded of a day: what it was derived from, how many readings it
    read (``misfiled``: of them, stamped on another day), the hash of the state it ends with
    and of the state it continued from (None for the first day it was computed from)."""

    files: Files
    provenance: Provenance
    read: int
    misfiled: int
    state_hash: int
    entered_with: int | None


@dataclass(frozen=True)
class Block:
    """Consecutive days to compute, for ``ALL`` components or those ``CHANGED``, and why
    (``reasons``: for a changed block, what may have changed them)."""

    days: tuple[str, ...]
    components: str
    reasons: tuple[str, ...]

    @property
    def span(self) -> str:
        """The block's days as ``first..last`` (or its one day)."""
        return span(list(self.days))


def span(days: list[str]) -> str:
    """Days as ``first..last``, or the one day."""
    return days[0] if len(days) == 1 else f"{days[0]}..{days[-1]}"


def stale_reason(
    files: Files, stored: StoredDay | None, provenance: Provenance, full_refresh: bool
) -> str | None:
    """Why a stored day cannot be reused for any component, or None."""
    if full_refresh:
        return FULL_REFRESH
    if stored is None:
        return NOT_STORED
    if stored.provenance.shaping != provenance.shaping:
        return SETTINGS_CHANGED
    if stored.files != files:
        return FILES_CHANGED
    return None


def plan(
    days: list[str],
    run_date: str,
    files: dict[str, Files],
    stored: dict[str, StoredDay],
    provenance: Provenance,
    full_refresh: bool = False,
) -> list[Block]:
    """The blocks a run computes, in order, over the input's day partitions ``days``
    (sorted; those after ``run_date`` are read for this run only, never reused)."""
    own = [d for d in days if d <= run_date]
    after = tuple(d for d in days if d > run_date)
    stale = {d: stale_reason(files[d], stored.get(d), provenance, full_refresh) for d in own}
    blocks: list[Block] = []
    whole: list[str] = []

    def close_whole() -> None:
        if whole:
            reasons = tuple(sorted({stale[d] for d in whole}))
            blocks.append(Block(tuple(whole), ALL, reasons))
            whole.clear()

    for position, day in enumerate(own):
        if stale[day] is not None:
            whole.append(day)
            continue
        previous = own[position - 1] if position else None
        close_whole()
        reasons = []
        if stored[day].provenance.fleet != provenance.fleet:
            reasons.append(FLEET_CHANGED)
        follows_computed = bool(blocks) and blocks[-1].days[-1] == previous
        if previous is not None and (
            follows_computed or stored[day].entered_with != stored[previous].state_hash
        ):
            reasons.append(STATE_MOVED)
        if not reasons:
            continue
        last = blocks[-1] if follows_computed else None
        if (
            last is not None
            and last.components == CHANGED
            and FLEET_CHANGED in last.reasons
            and FLEET_CHANGED in reasons
            and stored[day].entered_with == stored[previous].state_hash
        ):
            blocks[-1] = Block((*last.days, day), CHANGED, last.reasons)
        else:
            blocks.append(Block((day,), CHANGED, tuple(reasons)))
    close_whole()
    if after:
        blocks.append(Block(after, ALL, (AFTER_RUN_DATE,)))
    return blocks


def passes(blocks: list[Block], days: list[str]) -> list[list[Block]]:
    """``blocks`` (of :func:`plan`, in order, over ``days``) grouped into passes over the
    readings: consecutive blocks for every component (the run's last days and the days after
    the run date) are one pass, one chain through their days; a block for the components
    that changed is a pass of its own."""
    grouped: list[list[Block]] = []
    for block in blocks:
        last = grouped[-1][-1] if grouped else None
        if (
            last is not None
            and last.components == ALL
            and block.components == ALL
            and days.index(block.days[0]) == days.index(last.days[-1]) + 1
        ):
            grouped[-1].append(block)
        else:
            grouped.append([block])
    return grouped
