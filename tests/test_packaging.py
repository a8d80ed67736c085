"""packages.zip: what build_dependencies.sh puts in it, that it is reproducible, that its
runtime packages work from the zip alone (boto3; the alerts page, its template, Jinja2 and
MarkupSafe), and that native code is refused (unless it only speeds up Python the package
also has)."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import REPO
from packaging.requirements import Requirement
from test_alert_page import VALUES, page_inputs, render

from dependencies.config import BUNDLED_CONFIG
from dependencies.packaging import NATIVE_SUFFIXES, package_files

# What the entry file imports, directly or not: the zip ships these and nothing else of jobs/
# (not the entry file itself, debug.py or the tools).
JOB_MODULES = {
    "__init__",
    "alerts/__init__",
    "alerts/evidence",
    "alerts/history",
    "alerts/page",
    "alerts/value",
    "detection",
    "inputs",
    "ledger/__init__",
    "ledger/compute",
    "ledger/plan",
    "ledger/store",
    "ledger/update",
    "publication",
    "readings",
    "report",
    "rules",
    "run",
    "usage",
    "validate",
}
# Files the job's modules read at run time: the alerts page's template.
JOB_DATA = {"jobs/alerts/alerts.html.j2"}


def test_the_zip_holds_the_job_modules_the_config_and_pure_runtime_packages(
    packages_zip: Path,
) -> None:
    # GIVEN the zip built from the lock
    names = set(zipfile.ZipFile(packages_zip).namelist())

    # THEN it has dependencies/, exactly the job's other modules, the bundled config and the
    # runtime packages; not the entry file, Spark's own packages, bytecode or the build tools
    own = {p.relative_to(REPO).as_posix() for p in (REPO / "dependencies").glob("*.py")}
    assert own <= names
    assert {n for n in names if n.startswith("jobs/")} == {
        f"jobs/{module}.py" for module in JOB_MODULES
    } | JOB_DATA
    assert BUNDLED_CONFIG in names
    assert {
        "boto3/__init__.py",
        "botocore/__init__.py",
        "six.py",
        "prometheus_client/__init__.py",
        "plotly/__init__.py",
        "jinja2/__init__.py",
        "markupsafe/__init__.py",
        "markupsafe/_native.py",
    } <= names
    # MarkupSafe without its compiled speed-up, which cannot load from a zip
    assert not [n for n in names if n.endswith(NATIVE_SUFFIXES) or ".so." in n]
    assert "jobs/datalake_job.py" not in names
    assert not [
        n for n in names if n.startswith(("pyspark/", "py4j/", "tests/")) or n.endswith(".pyc")
    ]


def test_the_same_lock_gives_the_same_zip(packages_zip: Path, tmp_path: Path) -> None:
    # GIVEN a second build from the same lock and sources
    again = tmp_path / "packages.zip"
    subprocess.run(
        [str(REPO / "build_dependencies.sh"), str(again)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    # THEN the two zips are byte for byte the same
    assert again.read_bytes() == packages_zip.read_bytes()


def isolated_probe(script: str) -> dict:
    """Run ``script`` in an isolated interpreter (no site-packages, no environment paths); it
    must succeed. Returns the JSON object it printed."""
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", script],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_runtime_packages_work_from_the_zip_alone(packages_zip: Path, moto_server: str) -> None:
    # GIVEN an isolated interpreter (no site-packages, no PYTHONPATH) that sees only the zip
    script = f"""
import json, sys
sys.path.insert(0, {str(packages_zip)!r})
import boto3
from dependencies import s3
from dependencies.config import bundled_defaults
client = s3.client(
    {{"region": "us-east-1", "profile": "", "endpoint_url": {moto_server!r}, "max_attempts": 2}}
)
client.create_bucket(Bucket="zip-probe")
s3.upload_text(client, "s3://zip-probe/probe.json", json.dumps(bundled_defaults()))
print(json.dumps({{"boto3": boto3.__file__, "read_back": json.loads(s3.read_text(client, "s3://zip-probe/probe.json"))}}))
"""
    # WHEN it loads the bundled config and uses boto3 against S3 (moto)
    probe = isolated_probe(script)

    # THEN boto3 came from the zip, worked, and the config inside the zip is the repository's
    assert probe["boto3"].startswith(str(packages_zip))
    assert probe["read_back"] == json.loads((REPO / BUNDLED_CONFIG).read_text())


def test_the_alerts_page_renders_from_the_zip_alone(packages_zip: Path) -> None:
    # GIVEN an isolated interpreter that sees only the zip, and the inputs of a page with
    # markup, scripts, quotes and ampersands in every text field (dates as ISO strings)
    report, alerts, evidence = page_inputs(VALUES)
    arguments = json.dumps(
        [report, alerts, evidence, VALUES["currency"], VALUES["command"]], default=str
    )
    script = f"""
import importlib.resources, json, sys
sys.path.insert(0, {str(packages_zip)!r})
import jinja2, markupsafe, plotly
from jobs.alerts import page
print(json.dumps({{
    "modules": [m.__file__ for m in (jinja2, markupsafe, plotly, page)],
    "template": str(importlib.resources.files("jobs.alerts").joinpath(page.TEMPLATE)),
    "escaping": markupsafe._escape_inner.__module__,
    "page": page.render_alerts_html(*json.loads({arguments!r})),
}}))
"""
    # WHEN it renders the alerts page
    probe = isolated_probe(script)

    # THEN Jinja2, MarkupSafe (its pure-Python escaping), plotly, the page's module and its
    # template all came from the zip
    assert [path.startswith(str(packages_zip)) for path in probe["modules"]] == [True] * 4
    assert probe["template"].startswith(str(packages_zip))
    assert probe["escaping"] == "markupsafe._native"
    # and the page is the one the checkout renders, every value escaped
    assert probe["page"] == render(VALUES)
    assert VALUES["device_id"] not in probe["page"]


def test_optional_native_code_is_left_out_not_refused() -> None:
    # GIVEN MarkupSafe, installed with its compiled speed-up
    version = importlib.metadata.version("markupsafe")
    installed = [str(f) for f in importlib.metadata.distribution("markupsafe").files or []]
    assert [name for name in installed if name.endswith(NATIVE_SUFFIXES)]
    # WHEN its files for the zip are listed
    files = package_files(Requirement(f"markupsafe=={version}"))
    # THEN the speed-up is left out and the pure-Python escaping it falls back to is in
    assert "markupsafe/_native.py" in files
    assert not [name for name in files if name.endswith(NATIVE_SUFFIXES)]


def test_a_package_with_native_code_is_refused(tmp_path: Path) -> None:
    # GIVEN a lock whose runtime packages include one with a compiled extension
    native = "psutil"
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"six==1.17.0\n{native}=={importlib.metadata.version(native)}\n")
    output = tmp_path / "packages.zip"

    # WHEN the zip is built
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dependencies.packaging",
            "--requirements",
            str(requirements),
            "--entry",
            "jobs/datalake_job.py",
            "--output",
            str(output),
        ],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )

    # THEN it is refused with the reason and the way out, and no zip is written
    assert result.returncode == 1
    assert f"{native} {importlib.metadata.version(native)} has native code" in result.stderr
    assert "cannot be imported from a zip" in result.stderr
    assert "--archives" in result.stderr
    assert not output.exists()


def test_modules_only_leaves_runtime_packages_out(tmp_path: Path) -> None:
    # GIVEN the --archives route, where a packed virtualenv brings the runtime packages
    output = tmp_path / "modules.zip"
    # WHEN the zip is built with --modules-only
    subprocess.run(
        [str(REPO / "build_dependencies.sh"), "--modules-only", str(output)],
        check=True,
        timeout=300,
    )
    # THEN it holds the job's modules and the config, and no runtime package
    names = set(zipfile.ZipFile(output).namelist())
    assert {"dependencies/s3.py", "jobs/rules.py", BUNDLED_CONFIG} <= names
    assert not [
        name for name in names if not name.startswith(("dependencies/", "jobs/", "configs/"))
    ]
