"""What a run computes of the readings' ledger, planned without Spark: the days that cannot
be reused are computed for every component, the days after them only for the components
that changed, and nothing else."""

from __future__ import annotations

from jobs.ledger.plan import (
    AFTER_RUN_DATE,
    ALL,
    CHANGED,
    FILES_CHANGED,
    FLEET_CHANGED,
    FULL_REFRESH,
    NOT_STORED,
    SETTINGS_CHANGED,
    STATE_MOVED,
    Block,
    Files,
    Provenance,
    StoredDay,
    passes,
    plan,
)

DAYS = ["2026-11-10", "2026-11-11", "2026-11-12", "2026-11-13"]
RUN_DATE = "2026-11-13"
AFTER = "2026-11-14"
NOW = Provenance(shaping="v1", fleet=7)
FILES = {day: ((f"part-{day}.csv", 100, 1), (f"part-{day}-b.csv", 50, 2)) for day in [*DAYS, AFTER]}


def stored(days: list[str], provenance: Provenance = NOW) -> dict[str, StoredDay]:
    """``days`` stored from today's files, each continuing from the one before."""
    return {
        day: StoredDay(FILES[day], provenance, 10, 0, position, position - 1 if position else None)
        for position, day in enumerate(days)
    }


def planned(
    store: dict[str, StoredDay], files: dict[str, Files] = FILES, full_refresh: bool = False
) -> list[Block]:
    return plan([*DAYS, AFTER], RUN_DATE, files, store, NOW, full_refresh)


def test_an_empty_store_computes_every_day_in_one_block_then_the_day_after():
    # GIVEN no stored day WHEN a run plans THEN one block computes every day, another the
    # day after
    assert planned({}) == [
        Block(tuple(DAYS), ALL, (NOT_STORED,)),
        Block((AFTER,), ALL, (AFTER_RUN_DATE,)),
    ]


def test_a_daily_run_computes_its_new_day_and_the_day_after_only():
    # GIVEN every day but the run date stored WHEN a run plans
    blocks = planned(stored(DAYS[:-1]))
    # THEN it computes the run date, then the day after, and reuses the rest
    assert blocks == [
        Block((RUN_DATE,), ALL, (NOT_STORED,)),
        Block((AFTER,), ALL, (AFTER_RUN_DATE,)),
    ]


def test_a_run_with_every_day_stored_reads_the_day_after_alone():
    # GIVEN every day stored WHEN a run plans THEN only the day after is computed
    assert planned(stored(DAYS)) == [Block((AFTER,), ALL, (AFTER_RUN_DATE,))]


def test_a_late_file_computes_its_day_and_checks_the_state_it_hands_on():
    # GIVEN every day stored WHEN the second day gains a late file
    files = {**FILES, DAYS[1]: (*FILES[DAYS[1]], ("part-late.csv", 3, 9))}
    blocks = planned(stored(DAYS), files)
    # THEN that day is computed for every component, and each later day for the components
    # whose entering state may have moved
    assert blocks == [
        Block((DAYS[1],), ALL, (FILES_CHANGED,)),
        Block((DAYS[2],), CHANGED, (STATE_MOVED,)),
        Block((DAYS[3],), CHANGED, (STATE_MOVED,)),
        Block((AFTER,), ALL, (AFTER_RUN_DATE,)),
    ]


def test_a_rewritten_file_is_a_changed_file():
    # GIVEN every day stored WHEN the first day's file is rewritten (same name, new size)
    files = {**FILES, DAYS[0]: (("part-2026-11-10.csv", 90, 5), FILES[DAYS[0]][1])}
    # THEN that day is computed again
    assert planned(stored(DAYS), files)[0] == Block((DAYS[0],), ALL, (FILES_CHANGED,))


def test_a_fleet_change_checks_every_stored_day_for_the_components_it_touched_in_one_block():
    # GIVEN every day stored with another fleet WHEN a run plans
    blocks = planned(stored(DAYS, Provenance("v1", 6)))
    # THEN the days are one block of the changed components
    assert blocks == [
        Block(tuple(DAYS), CHANGED, (FLEET_CHANGED,)),
        Block((AFTER,), ALL, (AFTER_RUN_DATE,)),
    ]


def test_a_fleet_change_block_ends_where_a_day_continued_from_another_state():
    # GIVEN every day stored with another fleet, the third recorded as continuing from a
    # state the second no longer ends with (a run killed between them)
    store = stored(DAYS, Provenance("v1", 6))
    store[DAYS[2]] = StoredDay(
        FILES[DAYS[2]], Provenance("v1", 6), 10, 0, state_hash=2, entered_with=99
    )
    # THEN that day begins a block of its own, which checks its moved components too
    assert planned(store) == [
        Block(tuple(DAYS[:2]), CHANGED, (FLEET_CHANGED,)),
        Block(tuple(DAYS[2:]), CHANGED, (FLEET_CHANGED, STATE_MOVED)),
        Block((AFTER,), ALL, (AFTER_RUN_DATE,)),
    ]


def test_new_settings_or_a_full_refresh_compute_every_day():
    # GIVEN every day stored WHEN the usage settings change, or --full-refresh is asked
    changed = planned(stored(DAYS, Provenance("v0", 7)))
    refreshed = planned(stored(DAYS), full_refresh=True)
    # THEN every day is computed, for every component, in one block
    after = Block((AFTER,), ALL, (AFTER_RUN_DATE,))
    assert changed == [Block(tuple(DAYS), ALL, (SETTINGS_CHANGED,)), after]
    assert refreshed == [Block(tuple(DAYS), ALL, (FULL_REFRESH,)), after]


def test_a_day_that_continued_from_another_state_is_checked():
    # GIVEN every day stored, the third recorded as continuing from a state the second no
    # longer ends with (a run killed between them)
    store = stored(DAYS)
    store[DAYS[2]] = StoredDay(FILES[DAYS[2]], NOW, 10, 0, state_hash=2, entered_with=99)
    # THEN that day is checked for moved components, and nothing else but the day after
    assert planned(store) == [
        Block((DAYS[2],), CHANGED, (STATE_MOVED,)),
        Block((DAYS[3],), CHANGED, (STATE_MOVED,)),
        Block((AFTER,), ALL, (AFTER_RUN_DATE,)),
    ]


def test_a_backfill_reuses_its_days_and_reads_the_stored_day_after_for_itself():
    # GIVEN every day stored WHEN an earlier date runs (its day after is a stored day)
    blocks = plan(DAYS[:3], DAYS[1], FILES, stored(DAYS), NOW)
    # THEN its own days are reused and the day after is computed for it alone
    assert blocks == [Block((DAYS[2],), ALL, (AFTER_RUN_DATE,))]


def test_consecutive_blocks_of_every_component_are_one_pass_over_the_readings():
    days = [*DAYS, AFTER]
    # GIVEN a daily run's blocks WHEN grouped into passes THEN the run date and the day
    # after are one pass
    daily = planned(stored(DAYS[:-1]))
    assert passes(daily, days) == [daily]
    # GIVEN blocks of every component apart, or with a block of changed components between
    apart = [Block((DAYS[0],), ALL, (FILES_CHANGED,)), Block((DAYS[2],), ALL, (FILES_CHANGED,))]
    between = [
        Block((DAYS[2],), ALL, (FILES_CHANGED,)),
        Block((DAYS[3],), CHANGED, (STATE_MOVED,)),
        Block((AFTER,), ALL, (AFTER_RUN_DATE,)),
    ]
    # WHEN grouped THEN each is a pass of its own
    assert passes(apart, days) == [[block] for block in apart]
    assert passes(between, days) == [[block] for block in between]
