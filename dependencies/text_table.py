"""Aligned plain-text tables for a person at a terminal (end-of-run summaries)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

INDENT = "  "
COLUMN_GAP = "  "


def cell(value: Any, spec: str | None = None) -> str:
    """One value as text: ``spec`` (a format spec) when given, else integers with thousands
    separators, floats with three decimals, lists joined by commas, None as blank."""
    if value is None:
        return ""
    if spec is not None:
        return format(value, spec)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(item) for item in value)
    return str(value)


def text_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    formats: Mapping[str, str] | None = None,
) -> str:
    """``rows`` under a header of ``columns``, each column as wide as its widest cell;
    numbers right-aligned, everything else left-aligned; indented, no trailing spaces."""
    formats = formats or {}
    cells = [[cell(row.get(column), formats.get(column)) for column in columns] for row in rows]
    numeric = [
        bool(rows)
        and all(
            isinstance(row.get(column), (int, float)) and not isinstance(row.get(column), bool)
            for row in rows
            if row.get(column) is not None
        )
        for column in columns
    ]
    widths = [
        max([len(column), *(len(line[index]) for line in cells)])
        for index, column in enumerate(columns)
    ]

    def line(values: Sequence[str]) -> str:
        aligned = [
            value.rjust(width) if right else value.ljust(width)
            for value, width, right in zip(values, widths, numeric, strict=True)
        ]
        return (INDENT + COLUMN_GAP.join(aligned)).rstrip()

    return "\n".join([line(columns), *(line(values) for values in cells)])
