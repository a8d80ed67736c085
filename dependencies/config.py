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


def _same_type(default: Any, value: Any) -> bool:
    """Whether ``value`` may replace ``default`` (an int is accepted where a float is)."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return type(default) is type(value)
