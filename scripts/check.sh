#!/usr/bin/env bash
# The project's whole check: lint, types, tests, docs. Run from the repository root with the
# project's virtual environment active (see README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== ruff"
ruff check .
ruff format --check .
echo "== mypy --strict src/"
mypy --strict src/
echo "== import layers (lint-imports)"
lint-imports
echo "== pytest (4 workers; branch coverage of src/, which fails below 90%)"
# Four workers on two cores: many tests wait on subprocesses, signals and timeouts, so two
# workers leave the cores idle half the time. The coverage settings are in pyproject.toml.
# --dist loadgroup keeps each xdist_group (the browser tests: one Chromium) on one worker.
pytest -n 4 --dist loadgroup --cov --cov-report=term --durations=15
echo "== sphinx (warnings are errors)"
sphinx-build -W --keep-going -q -b html docs docs/_build/html
echo "All checks passed."
