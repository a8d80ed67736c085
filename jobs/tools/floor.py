"""The floor of the job's work: read the measurements and sort them by component and time.

Any job that differences register reads must at least do this, so the benchmark times it in
the same conditions as the job (same config, same local Spark settings, its own process) and
reports the ratio job / floor.

Run: ``DEBUG=1 python -m jobs.tools.floor --config CONFIG``.
"""

from __future__ import annotations

import argparse
import sys
import time

from dependencies.spark import start_spark
from dependencies.tables import read_raw_table

APP_NAME = "datalake_floor"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Read the measurements and sort them.")
    parser.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    spark, _, config = start_spark(app_name=APP_NAME, config_path=args.config)
    started = time.monotonic()
    readings = read_raw_table(
        spark, config["input"]["path"], "measurements", config["input"]["format"]
    )
    (
        readings.repartition("measuring_component_id")
        .sortWithinPartitions("measuring_component_id", "measured_at")
        .write.format("noop")
        .mode("overwrite")
        .save()
    )
    print(f"floor: read and sorted the measurements in {time.monotonic() - started:.1f} s")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
