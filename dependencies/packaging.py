"""Build packages.zip for ``spark-submit --py-files``; build_dependencies.sh runs it.

The zip holds ``dependencies/``, every other repository module the job's entry file imports
(the entry file itself goes to spark-submit on its own) with the templates beside them (the
alerts page's ``jobs/alerts/alerts.html.j2``), the bundled default config, and the runtime
packages of the lock (``pipenv requirements``) except those Spark provides, copied from the
virtualenv that ``make install`` synced with the lock. A package with native code cannot be
imported from a zip: it is refused, and the README's ``--archives`` route applies (there,
``--modules-only`` leaves the runtime packages to the packed virtualenv). The one exception is
a package whose native code only speeds up a pure-Python fallback (MarkupSafe's
``_speedups``): it ships without that code.
The zip is reproducible: sorted entries, fixed timestamps and modes, no bytecode.

    python -m dependencies.packaging --requirements REQS --entry jobs/datalake_job.py --output ZIP
    python -m dependencies.packaging --modules-only --entry jobs/datalake_job.py --output ZIP
"""

from __future__ import annotations

import argparse
import importlib.metadata
import modulefinder
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from dependencies.config import BUNDLED_CONFIG

REPO = Path(__file__).resolve().parent.parent
OWN_PACKAGES = ("dependencies",)
PROVIDED_BY_SPARK = frozenset({"pyspark", "py4j"})
NATIVE_SUFFIXES = (".so", ".pyd", ".dylib", ".dll")
# Packages whose native code is an optional speed-up over pure Python they also ship: the zip
# takes them without it. MarkupSafe (Jinja2's escaping) imports ``_speedups`` if it can and
# falls back to ``_native``, the same escaping in Python.
OPTIONAL_NATIVE = frozenset({"markupsafe"})
# Files beside the job's modules that they read at run time (importlib.resources), shipped
# with them: the alerts page's Jinja2 template.
MODULE_DATA_SUFFIXES = (".j2",)
SKIPPED_FILES = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})
SKIPPED_SUFFIXES = (".pyc", ".pyo")
ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
ZIP_MODE = 0o644
ARCHIVES_HINT = (
    "ship the runtime packages as a packed virtualenv with spark-submit --archives instead "
    "(README: 'Submitting to a cluster')"
)


class PackagingError(RuntimeError):
    """packages.zip cannot be built as asked."""


def runtime_requirements(requirements_text: str) -> list[Requirement]:
    """The pinned requirements that apply here (markers evaluated), minus Spark's own."""
    found = []
    for line in requirements_text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement as error:
            raise PackagingError(f"cannot parse requirement {line!r}: {error}") from None
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        if canonicalize_name(requirement.name) not in PROVIDED_BY_SPARK:
            found.append(requirement)
    return sorted(found, key=lambda requirement: canonicalize_name(requirement.name))


def package_files(requirement: Requirement) -> dict[str, Path]:
    """Zip entry name -> installed file, for one pinned package installed in this interpreter.

    Raises :class:`PackagingError` when it is missing, at another version, or has native code
    (native code that is only an optional speed-up, :data:`OPTIONAL_NATIVE`, is left out)."""
    pins = [spec.version for spec in requirement.specifier if spec.operator == "=="]
    if len(pins) != 1:
        raise PackagingError(f"{requirement}: the lock must pin one exact version")
    try:
        distribution = importlib.metadata.distribution(requirement.name)
    except importlib.metadata.PackageNotFoundError:
        raise PackagingError(f"{requirement.name} is not installed: run make install") from None
    if distribution.version != pins[0]:
        raise PackagingError(
            f"{requirement.name} {distribution.version} is installed but the lock has "
            f"{pins[0]}: run make install"
        )
    files: dict[str, Path] = {}
    native = []
    for entry in distribution.files or []:
        name = entry.as_posix()
        if (
            name.startswith("../")
            or "__pycache__" in entry.parts
            or name.endswith(SKIPPED_SUFFIXES)
        ):
            continue
        if entry.parts[0].endswith(".dist-info") and entry.name in SKIPPED_FILES:
            continue
        if name.endswith(NATIVE_SUFFIXES) or ".so." in entry.name:
            native.append(name)
            continue
        files[name] = Path(distribution.locate_file(entry))
    if canonicalize_name(requirement.name) in OPTIONAL_NATIVE:
        return files
    wheel = distribution.read_text("WHEEL") or ""
    if native or "Root-Is-Purelib: false" in wheel:
        shown = ", ".join(native[:3]) or "a platform-specific wheel"
        raise PackagingError(
            f"{requirement.name} {distribution.version} has native code ({shown}) and cannot be "
            f"imported from a zip; {ARCHIVES_HINT}"
        )
    return files


def top_level_modules(files: dict[str, Path]) -> set[str]:
    """The importable top-level names among a package's zip entries."""
    names = set()
    for name in files:
        first = name.split("/")[0]
        if first.endswith(".dist-info"):
            continue
        if "/" in name:
            names.add(first)
        elif first.endswith(".py"):
            names.add(first.removesuffix(".py"))
    return names


def own_modules(entry: Path) -> dict[str, Path]:
    """The repository's modules the job needs: all of ``dependencies/``, and every repository
    module ``entry`` imports (directly or not), except ``entry`` itself; and the data files
    (:data:`MODULE_DATA_SUFFIXES`) in the directories of those modules."""
    finder = modulefinder.ModuleFinder(path=[str(REPO)])
    finder.run_script(str(entry))
    modules = {Path(module.__file__) for module in finder.modules.values() if module.__file__}
    for package in OWN_PACKAGES:
        modules.update((REPO / package).rglob("*.py"))
    modules = {
        path
        for path in modules
        if path.resolve().is_relative_to(REPO) and path.resolve() != entry.resolve()
    }
    for directory in {path.parent for path in modules}:
        modules.update(
            path
            for path in directory.iterdir()
            if path.is_file() and path.name.endswith(MODULE_DATA_SUFFIXES)
        )
    return {path.relative_to(REPO).as_posix(): path for path in modules}


def write_zip(entries: dict[str, Path], output: Path) -> None:
    """Write ``entries`` to ``output`` reproducibly, replacing it only once complete."""
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        dir=output.parent, prefix=f".{output.name}.", suffix=".tmp"
    )
    os.close(handle)
    try:
        with zipfile.ZipFile(temporary, "w") as archive:
            for name in sorted(entries):
                info = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
                info.external_attr = ZIP_MODE << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, entries[name].read_bytes(), compresslevel=9)
        os.replace(temporary, output)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def check_zip_imports(output: Path, modules: set[str]) -> None:
    """Import every runtime module from the zip alone, in an isolated interpreter."""
    script = (
        "import importlib, sys\n"
        f"sys.path.insert(0, {str(output)!r})\n"
        f"for name in {sorted(modules)!r}:\n"
        "    module = importlib.import_module(name)\n"
        f"    assert {str(output)!r} in (module.__file__ or ''), (name, module.__file__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", script], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        last_line = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise PackagingError(
            f"a runtime package cannot be imported from {output.name}: {last_line}; {ARCHIVES_HINT}"
        )


def build(requirements_text: str, entry: Path, output: Path) -> dict[str, Path]:
    """Build the zip at ``output`` (runtime packages from ``requirements_text``, none when it
    is empty); return its entries."""
    entries = own_modules(entry)
    entries[BUNDLED_CONFIG] = REPO / BUNDLED_CONFIG
    runtime_modules: set[str] = set()
    refused = []
    for requirement in runtime_requirements(requirements_text):
        try:
            files = package_files(requirement)
        except PackagingError as error:
            refused.append(str(error))
            continue
        entries.update(files)
        runtime_modules |= top_level_modules(files)
    if refused:
        raise PackagingError("\n".join(refused))
    write_zip(entries, output)
    check_zip_imports(output, runtime_modules)
    return entries


def main(argv: list[str] | None = None) -> int:
    """Command line: build the zip, or explain in one line per problem why not."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sources = parser.add_mutually_exclusive_group(required=True)
    sources.add_argument("--requirements", help="output of `pipenv requirements`")
    sources.add_argument(
        "--modules-only", action="store_true", help="no runtime packages (--archives route)"
    )
    parser.add_argument(
        "--entry", required=True, help="the job's entry file, given to spark-submit"
    )
    parser.add_argument("--output", required=True, help="the zip to write")
    args = parser.parse_args(argv)
    output = Path(args.output).resolve()
    try:
        requirements = (
            "" if args.modules_only else Path(args.requirements).read_text(encoding="utf-8")
        )
        entries = build(requirements, Path(args.entry), output)
    except PackagingError as error:
        for line in str(error).splitlines():
            print(f"build_dependencies: {line}", file=sys.stderr)
        return 1
    print(
        f"build_dependencies: wrote {output} ({len(entries)} files, {output.stat().st_size} bytes)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
