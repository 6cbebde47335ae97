#!/usr/bin/env bash
# Creates .venv (if absent) and installs the pinned requirements into it. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")"
python="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
# Only the protos: its metadata would pull the 572 MB `tensorflow` wheel over tensorflow-cpu.
.venv/bin/pip install -q --disable-pip-version-check --no-deps tensorflow-serving-api==2.21.0
# The project itself, editable: `fgrn_tf` imports from this checkout and the console scripts
# (fgrn, fgrn-train, ...) land in .venv/bin. No dependencies: the pinned ones are above.
.venv/bin/pip install -q --disable-pip-version-check --no-deps -e .
