"""Job configuration: find the JSON file, merge it over the bundled defaults, validate it.

The bundled ``configs/datalake_config.json`` is the single place where every default value
lives; its values also fix each key's type. A run's config is merged over it, so a config
that only names ``input`` and ``output`` is complete. Unknown keys and wrong types are errors
that name the file and the key.
"""

from __future__ import annotations

import copy
import glob
import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dependencies import s3

BUNDLED_CONFIG = "configs/datalake_config.json"
CONFIG_GLOB = "*config.json"
REQUIRED_KEYS = (("input", "path"), ("output", "path"))
# Sections whose keys are free (Spark properties); every other key must exist in the defaults.
FREE_SECTIONS = frozenset({"spark"})
CHOICES = {
    ("input", "format"): ("csv", "parquet"),
    ("logging", "level"): ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
    ("logging", "console", "format"): ("text", "json"),
}

# The allowed range of each number (inclusive; None: unbounded), by key path ("*": any key).
RANGES: dict[tuple[str, ...], tuple[float | None, float | None]] = {
    ("window_days",): (1, None),
    ("baseline_days",): (1, None),
    ("alert_threshold",): (0.0, 1.0),
    ("history_days",): (0, None),
    ("evidence_max_devices",): (0, 10_000),
    ("adaptive_execution_min_input_mib",): (0, None),
    ("tariffs", "per_class", "*"): (0.0, None),
    ("usage", "lookback_days"): (0, None),
    ("usage", "gap_factor"): (1.0, None),
    ("usage", "rollover_high_share"): (0.0, 1.0),
    ("usage", "rollover_low_share"): (0.0, 1.0),
    ("usage", "day_has_data_share"): (0.0, 1.0),
    ("usage", "zero_interval_kwh"): (0.0, None),
    ("usage", "shape_max_interval_minutes"): (1, None),
    ("peers", "comparable_share"): (0.0, 1.0),
    ("peers", "min_baseline_kwh"): (0.0, None),
    ("peers", "min_class_devices"): (1, None),
    ("rules", "*", "weight"): (0.0, 1.0),
    ("rules", "*", "min_kwh"): (0.0, None),
    ("rules", "*", "max_kwh"): (0.0, None),
    ("rules", "*", "min_events"): (0.0, None),
    ("rules", "*", "min_days"): (1, None),
    ("rules", "*", "max_ratio"): (0.0, None),
    ("rules", "*", "min_run_hours"): (0.0, 24.0),
    ("rules", "*", "max_cv_ratio"): (0.0, None),
    ("rules", "*", "min_baseline_cv"): (0.0, None),
    ("rules", "*", "max_correlation"): (-1.0, 1.0),
    ("rules", "*", "max_present_share"): (0.0, 1.0),
    ("confounders", "*", "lowest_hours"): (1, 24),
    ("confounders", "*", "min_ratio"): (0.0, None),
    ("confounders", "*", "recent_days"): (1, None),
    ("confounders", "*", "latest_baseline_days"): (1, None),
    ("confounders", "*", "max_latest_ratio"): (0.0, None),
    ("confounders", "*", "max_profile_cv"): (0.0, None),
    ("logging", "file", "max_bytes"): (0, None),
    ("logging", "file", "backup_count"): (0, None),
    ("logging", "cloudwatch", "flush_interval_seconds"): (0.1, None),
    ("logging", "cloudwatch", "max_retries"): (0, None),
    ("logging", "cloudwatch", "retry_base_seconds"): (0.0, None),
    ("logging", "cloudwatch", "request_timeout_seconds"): (0.1, None),
    ("logging", "cloudwatch", "close_timeout_seconds"): (0.0, None),
    ("logging", "cloudwatch", "max_queued_events"): (1, None),
    ("metrics", "timeout_seconds"): (0.1, None),
    ("aws", "max_attempts"): (1, 20),
}


class ConfigError(ValueError):
    """The configuration cannot be found, parsed or validated."""


def bundled_defaults() -> dict[str, Any]:
    """The bundled default config, read from the repository or from ``packages.zip``."""
    container = Path(__file__).resolve().parent.parent
    if container.is_dir():
        return json.loads((container / BUNDLED_CONFIG).read_text(encoding="utf-8"))
    with zipfile.ZipFile(container) as archive:
        return json.loads(archive.read(BUNDLED_CONFIG).decode("utf-8"))


def find_config_file(explicit_path: str | None, spark_files_dir: str | None) -> str:
    """Locate the config: an explicit path, else one ``*config.json`` shipped with
    ``--files`` (the SparkFiles directory), else one in the working directory."""
    if explicit_path:
        if not s3.is_s3_url(explicit_path) and not os.path.isfile(explicit_path):
            raise ConfigError(f"config file not found: {explicit_path}")
        return explicit_path
    for directory, where in ((spark_files_dir, "SparkFiles"), (os.getcwd(), "working directory")):
        if not directory:
            continue
        candidates = sorted(glob.glob(os.path.join(directory, CONFIG_GLOB)))
        if len(candidates) > 1:
            raise ConfigError(
                f"more than one {CONFIG_GLOB} in the {where} ({directory}): "
                f"{', '.join(os.path.basename(c) for c in candidates)}; pass --config"
            )
        if candidates:
            return candidates[0]
    raise ConfigError(
        f"no config found: pass --config PATH, ship a {CONFIG_GLOB} with --files, "
        "or place one in the working directory"
    )


def parse_config_text(text: str, source: str) -> dict[str, Any]:
    """Parse JSON text into a validated config merged over the defaults."""
    try:
        overrides = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{source}: invalid JSON: {error}") from None
    if not isinstance(overrides, dict):
        raise ConfigError(f"{source}: the config must be a JSON object")
    for path in REQUIRED_KEYS:
        node: Any = overrides
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if node in (None, ""):
            raise ConfigError(f"{source}: missing required key {'.'.join(path)}")
    return merge_config(bundled_defaults(), overrides, source)


def load_config(path: str) -> dict[str, Any]:
    """Read and validate the config file at ``path``: a local path or an ``s3://`` URL.

    An S3 config is fetched with the bundled ``aws`` settings and boto3's usual lookup
    (``AWS_PROFILE``, ``AWS_REGION``, ``AWS_ENDPOINT_URL``, ~/.aws, instance role)."""
    if s3.is_s3_url(path):
        try:
            text = s3.read_text(s3.client(bundled_defaults()["aws"]), path)
        except s3.AwsError as error:
            raise ConfigError(f"cannot read config: {error}") from None
        return parse_config_text(text, path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config: {error.strerror}") from None
    return parse_config_text(text, path)


def merge_config(
    defaults: Mapping[str, Any], overrides: Mapping[str, Any], source: str, prefix: tuple = ()
) -> dict[str, Any]:
    """Return ``defaults`` updated with ``overrides``, checking keys and types."""
    merged = copy.deepcopy(dict(defaults))
    for key, value in overrides.items():
        path = (*prefix, key)
        dotted = ".".join(path)
        if prefix and prefix[0] in FREE_SECTIONS:
            if not isinstance(value, (str, int, float, bool)):
                raise ConfigError(f"{source}: {dotted} must be a string, number or boolean")
            merged[key] = str(value).lower() if isinstance(value, bool) else str(value)
            continue
        if key not in defaults:
            raise ConfigError(f"{source}: unknown key {dotted}")
        default = defaults[key]
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {dotted} must be an object")
            merged[key] = merge_config(default, value, source, path)
            continue
        if not _same_type(default, value):
            raise ConfigError(
                f"{source}: {dotted} must be of type {type(default).__name__}, "
                f"got {type(value).__name__}"
            )
        if path in CHOICES and value not in CHOICES[path]:
            raise ConfigError(f"{source}: {dotted} must be one of {', '.join(CHOICES[path])}")
        allowed = allowed_range(path)
        if allowed and not _within(value, allowed):
            raise ConfigError(f"{source}: {dotted} must be {_range_words(allowed)}, got {value}")
        merged[key] = float(value) if isinstance(default, float) else value
    return merged


def config_changes(
    config: Mapping[str, Any], defaults: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """What ``config`` sets differently from ``defaults`` (the bundled ones when not given),
    as ``{"dotted.key": value}`` in the config's order: a short view of a run's settings."""
    defaults = bundled_defaults() if defaults is None else defaults
    changes: dict[str, Any] = {}
    for key, value in config.items():
        default = defaults.get(key) if isinstance(defaults, Mapping) else None
        if isinstance(value, Mapping):
            nested = config_changes(value, default if isinstance(default, Mapping) else {})
            changes.update({f"{key}.{name}": item for name, item in nested.items()})
        elif key not in defaults or value != default:
            changes[key] = value
    return changes


def allowed_range(path: tuple[str, ...]) -> tuple[float | None, float | None] | None:
    """The range :data:`RANGES` allows for the number at ``path``, if it sets one."""
    for pattern, allowed in RANGES.items():
        if len(pattern) == len(path) and all(
            p in ("*", k) for p, k in zip(pattern, path, strict=True)
        ):
            return allowed
    return None


def _within(value: float, allowed: tuple[float | None, float | None]) -> bool:
    low, high = allowed
    return (low is None or value >= low) and (high is None or value <= high)


def _range_words(allowed: tuple[float | None, float | None]) -> str:
    low, high = allowed
    if high is None:
        return f">= {low}"
    return f"between {low} and {high}" if low is not None else f"<= {high}"


def _same_type(default: Any, value: Any) -> bool:
    """Whether ``value`` may replace ``default`` (an int is accepted where a float is)."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return type(default) is type(value)
