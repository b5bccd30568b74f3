#!/usr/bin/env bash
# The project's whole check: lint, types, tests, docs. Run from the repository root with the
# project's virtual environment active (see README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS=0
step() { echo "== $* (${SECONDS} s)"; }
step "ruff"
ruff check .
ruff format --check .
step "mypy --strict src/"
mypy --strict src/
step "import layers (lint-imports)"
lint-imports
step "pytest and the docs build (4 workers; branch coverage of src/, which fails below fail_under in pyproject.toml)"
# Four workers on two cores: many tests wait on subprocesses, signals and timeouts, so two
# workers leave the cores idle half the time. The coverage settings are in pyproject.toml.
# --dist loadgroup keeps each xdist_group (one Chromium, one mypy run) on one worker.
# The docs are built once per check, the gallery's examples run in that build: the test
# session starts `sphinx-build -W` in the background as it starts, into docs/_build/html,
# and the tests of the pages, of the browser demo and of the examples read that build
# (tests/built_docs.py). The slowest tests run first (tests/conftest.py).
export LENET5_DOCS_BUILD=docs/_build
rm -f "$LENET5_DOCS_BUILD/started" "$LENET5_DOCS_BUILD/status"
pytest -n 4 --dist loadgroup --cov --cov-report=term --durations=25
step "sphinx-build -W (run by the tests above)"
if [ "$(cat "$LENET5_DOCS_BUILD/status" 2>/dev/null)" != 0 ]; then
  cat "$LENET5_DOCS_BUILD/sphinx.log" 2>/dev/null || echo "the docs were not built"
  exit 1
fi
echo "All checks passed in ${SECONDS} s."
