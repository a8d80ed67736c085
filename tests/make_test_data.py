"""Write the small, hand-checkable dataset in tests/test_data (run date 2026-11-15).

W = 2026-11-02..15, B = 2026-10-05..11-01; readings run from 2026-10-04 to 2026-11-16T00:00Z.
Every honest residential meter draws ``PROFILE`` x its scale (10 kWh a day at scale 1); in W
it draws a further factor that stays within a few percent. Each planted case changes one
meter so that exactly the rules in ``EXPECTED_RULES`` fire on it.

Run ``python tests/make_test_data.py`` to rewrite the CSV files.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

OUT = Path(__file__).resolve().parent / "test_data"
RUN_DATE = "2026-11-15"
START = datetime(2026, 10, 4, tzinfo=UTC)
END = datetime(2026, 11, 16, tzinfo=UTC)
W_START = datetime(2026, 11, 2, tzinfo=UTC)
# kWh per hour of day: base load, a morning and an evening peak (10 kWh a day).
PROFILE = [0.2 + (0.6 if 7 <= h < 9 else 0.0) + (1.0 if 18 <= h < 22 else 0.0) for h in range(24)]
INSTALLED = "2026-01-01T00:00:00Z"

# The rules each planted meter must raise (every other meter raises none).
EXPECTED_RULES = {
    "G01": ["UNINSTALLED_CONSUMPTION"],
    "K01": ["REGISTER_ROLLBACK"],
    "F01": ["REVERSE_FLOW"],
    "T01": ["TAMPER_EVENTS"],
    "Z01": [
        "CONSUMPTION_DROP",
        "PEER_DEVIATION",
        "SUSTAINED_DROP",
        "ZERO_CONSUMPTION",
        "ZERO_RUNS",
    ],
    "D01": ["CONSUMPTION_DROP", "PEER_DEVIATION", "SUSTAINED_DROP"],
    "H02": ["ZERO_RUNS"],
    "H05": ["FLAT_PROFILE", "PROFILE_SHIFT"],
    "H06": ["PROFILE_SHIFT"],
    "P01": ["PEER_DEVIATION", "SUSTAINED_DROP"],
    "N01": ["DATA_GAP"],
}

Amount = Callable[[datetime], float]


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def hours(start: datetime = START, end: datetime = END) -> list[datetime]:
    """Every full hour in [start, end]."""
    count = int((end - start).total_seconds() // 3600)
    return [start + timedelta(hours=i) for i in range(count + 1)]


def household(scale: float, window_factor: float = 1.0) -> Amount:
    """kWh of the hour starting at ``t``."""

    def amount(t: datetime) -> float:
        return PROFILE[t.hour] * scale * (window_factor if t >= W_START else 1.0)

    return amount


def cumulative(
    component: str,
    amount: Amount,
    start_value: float = 1000.0,
    stamps: list[datetime] | None = None,
) -> list[list[str]]:
    """Register reads at ``stamps``: each read adds the amount of the hour before it."""
    rows, value = [], start_value
    for t in stamps if stamps is not None else hours():
        if t > START:
            value += amount(t - timedelta(hours=1))
        rows.append([component, stamp(t), f"{value:.4f}"])
    return rows


def main() -> None:
    devices, components, installs, readings = [], [], [], []

    def meter(
        device: str,
        amount: Amount | None = None,
        klass: str = "RESIDENTIAL",
        generation: bool = False,
        rows: list[list[str]] | None = None,
        interval: str = "60",
    ) -> None:
        """A device installed since 2026-01-01 with a CUMULATIVE import register."""
        devices.append([device, f"SN-{device}", "ELECTRIC_METER", "Acme", "AM-1"])
        installs.append(
            [f"IE-{device}", device, f"SP-{device}", INSTALLED, "", klass, str(generation).lower()]
        )
        components.append([f"{device}-IMP", device, "IMPORT_KWH", "CUMULATIVE", interval, ""])
        readings.extend(rows if rows is not None else cumulative(f"{device}-IMP", amount))

    # 20 honest households: W within a few percent of B.
    for i in range(1, 21):
        meter(f"R{i:02d}", household(1.0 + 0.05 * i, 0.96 + 0.004 * i))
    # R01 is also a register that rolls over at 10,000 kWh during B.
    components[0][5] = "10000"
    readings[: len(hours())] = cumulative("R01-IMP", household(1.05, 0.964), start_value=9800.0)
    for row in readings[: len(hours())]:
        if float(row[2]) >= 10000:
            row[2] = f"{float(row[2]) - 10000:.4f}"

    # R21: an INTERVAL component (each value is the hour ending at measured_at).
    amount21 = household(1.1)
    meter(
        "R21",
        rows=[
            ["R21-IMP", stamp(t), f"{amount21(t - timedelta(hours=1)):.4f}"] for t in hours()[1:]
        ],
    )
    components[-1][3] = "INTERVAL"

    # R22: a solar site: no import around noon, legitimate export.
    def solar_import(t: datetime) -> float:
        return 0.0 if 10 <= t.hour < 15 else PROFILE[t.hour]

    meter("R22", solar_import, generation=True)
    components.append(["R22-EXP", "R22", "EXPORT_KWH", "CUMULATIVE", "60", ""])
    readings.extend(cumulative("R22-EXP", lambda t: 0.5 if 10 <= t.hour < 15 else 0.0, 0.0))

    # R23: removed on 2026-10-20 12:00, re-installed at another service point on 10-22.
    meter(
        "R23",
        lambda t: (
            0.0
            if datetime(2026, 10, 20, 12, tzinfo=UTC) <= t < datetime(2026, 10, 22, tzinfo=UTC)
            else PROFILE[t.hour]
        ),
    )
    installs[-1][4] = "2026-10-20T12:00:00Z"
    installs.append(
        ["IE-R23-2", "R23", "SP-R23-B", "2026-10-22T00:00:00Z", "", "RESIDENTIAL", "false"]
    )

    # Commercial: two honest offices (too few for class statistics).
    for name in ("C01", "C02"):
        meter(name, lambda t: 2.0 if 8 <= t.hour < 18 and t.weekday() < 5 else 0.5, "COMMERCIAL")

    # DAY1: a daily-read register (shape rules do not apply).
    days = [START + timedelta(days=d) for d in range((END - START).days + 1)]
    meter(
        "DAY1",
        rows=[["DAY1-IMP", stamp(t), f"{500 + 12.0 * i:.4f}"] for i, t in enumerate(days)],
        interval="1440",
    )

    # GAP1: honest, silent for two days in W (one reading closes the gap).
    gap = (datetime(2026, 11, 9, 1, tzinfo=UTC), datetime(2026, 11, 11, tzinfo=UTC))
    meter(
        "GAP1",
        rows=[
            row
            for row in cumulative("GAP1-IMP", household(1.0))
            if not stamp(gap[0]) <= row[1] < stamp(gap[1])
        ],
    )

    # NEW1: installed in W, no baseline: no comparison rule may fire.
    new_start = datetime(2026, 11, 3, tzinfo=UTC)
    meter("NEW1", rows=cumulative("NEW1-IMP", household(1.0), 0.0, hours(new_start)))
    installs[-1][3] = stamp(new_start)

    # --- planted cases -------------------------------------------------------------------
    # G01: removed on 11-05, yet keeps consuming (uninstalled consumption).
    meter("G01", household(1.0))
    installs[-1][4] = "2026-11-05T00:00:00Z"
    # K01: the register is wound back by 5 kWh on 11-08 12:00.
    rows = cumulative("K01-IMP", household(1.0))
    for row in rows:
        if row[1] >= "2026-11-08T12:00:00Z":
            row[2] = f"{float(row[2]) - 5:.4f}"
    meter("K01", rows=rows)
    # F01: exports 0.3 kWh an hour at noon in W, with no generation on site.
    meter("F01", household(1.0))
    components.append(["F01-EXP", "F01", "EXPORT_KWH", "CUMULATIVE", "60", ""])
    readings.extend(
        cumulative("F01-EXP", lambda t: 0.3 if t >= W_START and 12 <= t.hour < 14 else 0.0, 0.0)
    )
    # T01: the tamper counter (read daily) steps by 2 on 11-10.
    meter("T01", household(1.0))
    components.append(["T01-TMP", "T01", "TAMPER_COUNT", "CUMULATIVE", "1440", ""])
    readings.extend(
        ["T01-TMP", stamp(t), "2" if t >= datetime(2026, 11, 10, tzinfo=UTC) else "0"] for t in days
    )
    # Z01: nothing at all on 8 days of W (a full bypass).
    zero = (datetime(2026, 11, 5, tzinfo=UTC), datetime(2026, 11, 13, tzinfo=UTC))
    meter("Z01", lambda t: 0.0 if zero[0] <= t < zero[1] else PROFILE[t.hour])
    # D01: half the consumption through W (h1, alpha = 0.5).
    meter("D01", household(1.0, 0.5))
    # H02: zero from 01:00 to 05:00 every day of W (h2).
    meter("H02", lambda t: 0.0 if t >= W_START and 1 <= t.hour < 5 else PROFILE[t.hour])
    # H05: every hour of W reads the day's mean (h5).
    meter("H05", lambda t: sum(PROFILE) / 24 if t >= W_START else PROFILE[t.hour])
    # H06: the day reversed in W (h6).
    meter("H06", lambda t: PROFILE[23 - t.hour] if t >= W_START else PROFILE[t.hour])
    # P01: a quarter less than its peers in both weeks of W (a partial thief, h1 with alpha 0.74):
    # too little for CONSUMPTION_DROP, an outlier of its class, and a sustained drop.
    meter("P01", household(1.0, 0.74))
    # N01: installed through W, its readings stop on 11-06.
    meter(
        "N01",
        rows=cumulative(
            "N01-IMP", household(1.0), stamps=hours(START, datetime(2026, 11, 6, tzinfo=UTC))
        ),
    )

    write("device", ["device_id", "serial_number", "device_type", "manufacturer", "model"], devices)
    write(
        "measuring_component",
        [
            "measuring_component_id",
            "device_id",
            "component_type",
            "reading_type",
            "interval_minutes",
            "register_max",
        ],
        components,
    )
    write(
        "install_event",
        [
            "install_event_id",
            "device_id",
            "service_point_id",
            "installed_at",
            "removed_at",
            "customer_class",
            "has_generation",
        ],
        installs,
    )
    write("measurements", ["measuring_component_id", "measured_at", "value"], readings)


def write(table: str, header: list[str], rows: list[list[str]]) -> None:
    directory = OUT / table
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "part-00000.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


if __name__ == "__main__":
    main()
