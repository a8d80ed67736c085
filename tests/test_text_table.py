"""Aligned plain-text tables for the end-of-run summary."""

from __future__ import annotations

from dependencies.text_table import text_table


def test_columns_are_aligned_numbers_right_text_left_lists_joined():
    # GIVEN rows of numbers, text, lists and a missing value
    rows = [
        {"device_id": "G01", "score": 1.0, "rules": ["UNINSTALLED_CONSUMPTION"], "readings": 40400},
        {
            "device_id": "Z01-LONG",
            "score": 0.9521,
            "rules": ["ZERO_RUNS", "DATA_GAP"],
            "readings": None,
        },
    ]

    # WHEN they are laid out, one column with its own format
    table = text_table(rows, ("device_id", "readings", "score", "rules"), {"score": ".2f"})

    # THEN each column is as wide as its widest cell, in the order asked for
    assert table.splitlines() == [
        "  device_id  readings  score  rules",
        "  G01          40,400   1.00  UNINSTALLED_CONSUMPTION",
        "  Z01-LONG              0.95  ZERO_RUNS, DATA_GAP",
    ]


def test_a_table_without_rows_is_its_header():
    assert text_table([], ("rule", "findings")) == "  rule  findings"
