"""Finding, parsing and validating the job config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dependencies.config import (
    ConfigError,
    bundled_defaults,
    config_changes,
    find_config_file,
    load_config,
    merge_config,
)
from jobs.rules import RULES

MINIMAL = {"input": {"path": "/in"}, "output": {"path": "/out"}}


def write(path: Path, content: object) -> Path:
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def test_explicit_path_wins_over_spark_files_and_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a config in SparkFiles, one in the working directory, and an explicit one
    spark_files, cwd = tmp_path / "sparkfiles", tmp_path / "cwd"
    spark_files.mkdir()
    cwd.mkdir()
    write(spark_files / "shipped_config.json", MINIMAL)
    write(cwd / "local_config.json", MINIMAL)
    explicit = write(tmp_path / "explicit.json", MINIMAL)
    monkeypatch.chdir(cwd)
    # WHEN / THEN each is found in the documented order
    assert find_config_file(str(explicit), str(spark_files)) == str(explicit)
    assert find_config_file(None, str(spark_files)) == str(spark_files / "shipped_config.json")
    assert find_config_file(None, str(tmp_path / "empty")) == str(cwd / "local_config.json")


def test_no_config_anywhere_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN no config in SparkFiles nor in the working directory
    monkeypatch.chdir(tmp_path)
    # WHEN / THEN the error says how to provide one
    with pytest.raises(ConfigError, match="no config found: pass --config"):
        find_config_file(None, str(tmp_path))


def test_two_candidates_are_an_error(tmp_path: Path) -> None:
    # GIVEN two *config.json shipped with --files
    write(tmp_path / "a_config.json", MINIMAL)
    write(tmp_path / "b_config.json", MINIMAL)
    # WHEN / THEN the error names both
    with pytest.raises(ConfigError, match=r"more than one .*a_config.json, b_config.json"):
        find_config_file(None, str(tmp_path))


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file not found: .*nope.json"):
        find_config_file(str(tmp_path / "nope.json"), None)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", r"bad\.json: invalid JSON"),
        ([1, 2], r"bad\.json: the config must be a JSON object"),
        ({"input": {"path": "/in"}}, r"bad\.json: missing required key output\.path"),
        ({**MINIMAL, "window_dayz": 14}, r"bad\.json: unknown key window_dayz"),
        ({**MINIMAL, "rules": {"DATA_GAP": {"wieght": 1}}}, r"unknown key rules\.DATA_GAP\.wieght"),
        ({**MINIMAL, "window_days": "14"}, r"window_days must be of type int, got str"),
        ({**MINIMAL, "window_days": 14.5}, r"window_days must be of type int, got float"),
        (
            {**MINIMAL, "input": {"path": "/in", "require_success_marker": 1}},
            r"must be of type bool",
        ),
        ({**MINIMAL, "usage": 3}, r"usage must be an object"),
        (
            {**MINIMAL, "input": {"path": "/in", "format": "xlsx"}},
            r"input\.format must be one of csv, parquet",
        ),
    ],
)
def test_invalid_configs_are_errors_naming_file_and_key(
    tmp_path: Path, content: object, message: str
) -> None:
    # GIVEN a config with one mistake
    path = write(tmp_path / "bad.json", content)
    # WHEN / THEN loading it fails with a message naming the file and the key
    with pytest.raises(ConfigError, match=message):
        load_config(str(path))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"window_days": 0}, r"bad\.json: window_days must be >= 1, got 0$"),
        ({"history_days": -1}, r"bad\.json: history_days must be >= 0, got -1$"),
        (
            {"rules": {"DATA_GAP": {"weight": 1.5}}},
            r"bad\.json: rules\.DATA_GAP\.weight must be between 0\.0 and 1\.0, got 1\.5$",
        ),
        (
            {"evidence_max_devices": 1_000_000},
            r"bad\.json: evidence_max_devices must be between 0 and 10000, got 1000000$",
        ),
        ({"aws": {"max_attempts": 0}}, r"bad\.json: aws\.max_attempts must be between 1 and 20"),
        ({"alert_threshold": -0.1}, r"alert_threshold must be between 0\.0 and 1\.0, got -0\.1"),
        (
            {"rules": {"PROFILE_SHIFT": {"max_correlation": 2}}},
            r"rules\.PROFILE_SHIFT\.max_correlation must be between -1\.0 and 1\.0, got 2",
        ),
    ],
)
def test_out_of_range_values_are_one_line_errors_naming_file_key_and_range(
    tmp_path: Path, content: dict[str, object], message: str
) -> None:
    # GIVEN a config with a number outside its allowed range
    path = write(tmp_path / "bad.json", {**MINIMAL, **content})
    # WHEN / THEN loading it fails with one line naming the file, the key and the range
    with pytest.raises(ConfigError, match=message) as raised:
        load_config(str(path))
    assert "\n" not in str(raised.value)


def test_the_bundled_defaults_are_within_their_ranges(tmp_path: Path) -> None:
    # GIVEN every bundled value written as a run's config WHEN it is loaded THEN it passes
    defaults = bundled_defaults()
    assert load_config(str(write(tmp_path / "all.json", defaults))) == defaults


def test_minimal_config_is_completed_from_the_defaults(tmp_path: Path) -> None:
    # GIVEN a config naming only the paths and one threshold (an int where a float is expected)
    path = write(tmp_path / "job_config.json", {**MINIMAL, "alert_threshold": 1})
    # WHEN it is loaded
    config = load_config(str(path))
    # THEN the overrides apply and every other key has its default
    defaults = bundled_defaults()
    assert config["input"] == {**defaults["input"], "path": "/in"}
    assert config["alert_threshold"] == 1.0
    assert isinstance(config["alert_threshold"], float)
    assert config["rules"] == defaults["rules"]
    assert config["window_days"] == defaults["window_days"]


def test_spark_section_takes_any_property_as_text() -> None:
    # GIVEN Spark properties of several JSON types
    merged = merge_config({"spark": {}}, {"spark": {"spark.a": 2, "spark.b": True}}, "x.json")
    # THEN they become Spark's string settings
    assert merged["spark"] == {"spark.a": "2", "spark.b": "true"}


def test_bundled_config_defines_every_rule_of_the_spec() -> None:
    # GIVEN the bundled defaults
    rules = bundled_defaults()["rules"]
    # THEN it configures every rule of the job (the spec's eleven and SUSTAINED_DROP), each
    # with a weight within (0, 1]
    assert set(rules) == set(RULES)
    assert len(rules) == 12
    assert all(0 < rule["weight"] <= 1 for rule in rules.values())


def test_config_changes_are_the_settings_that_differ_from_the_defaults(tmp_path: Path) -> None:
    # GIVEN a config that changes an input setting, a rule threshold and adds a Spark property,
    # and sets one value to its default
    defaults = bundled_defaults()
    config = load_config(
        str(
            write(
                tmp_path / "job_config.json",
                {
                    "input": {"path": defaults["input"]["path"], "format": "parquet"},
                    "output": {"path": "/out"},
                    "rules": {"ZERO_RUNS": {"min_days": 4}},
                    "spark": {"spark.executor.cores": "2"},
                },
            )
        )
    )

    # WHEN its changes are listed
    changes = config_changes(config)

    # THEN exactly the differing settings are named by their dotted keys
    assert changes == {
        "input.format": "parquet",
        "output.path": "/out",
        "rules.ZERO_RUNS.min_days": 4,
        "spark.spark.executor.cores": "2",
    }
    same = write(
        tmp_path / "same_config.json", {"input": defaults["input"], "output": defaults["output"]}
    )
    assert config_changes(load_config(str(same))) == {}
