#!/usr/bin/env bash
# Build packages.zip for `spark-submit --py-files packages.zip`: dependencies/, the modules the
# job imports and the templates beside them, the bundled default config, and the pure-Python
# runtime packages of the lock (`pipenv requirements`, without pyspark and py4j, which Spark
# provides). A runtime package with native code is refused (MarkupSafe ships without its
# optional compiled speed-up instead): ship a packed virtualenv with --archives instead
# (README, "Submitting to a cluster"), and build the zip with --modules-only.
#
#   ./build_dependencies.sh [--modules-only] [OUTPUT_ZIP]    # default: packages.zip here
set -euo pipefail
cd "$(dirname "$0")"
export PIPENV_VENV_IN_PROJECT=1
python=.venv/bin/python
[ -x "$python" ] || { echo "build_dependencies: no virtualenv in .venv: run make install" >&2; exit 1; }

if [ "${1:-}" = "--modules-only" ]; then
  "$python" -m dependencies.packaging --modules-only --entry jobs/datalake_job.py --output "${2:-packages.zip}"
  exit
fi
command -v pipenv >/dev/null || {
  echo "build_dependencies: pipenv is not on PATH (cron: run make package from a login shell first)" >&2
  exit 1
}
requirements="$(mktemp)"
trap 'rm -f "$requirements"' EXIT
pipenv requirements > "$requirements"
"$python" -m dependencies.packaging --requirements "$requirements" --entry jobs/datalake_job.py --output "${1:-packages.zip}"
