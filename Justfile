# hms-ops tasks. Run `uv run just` to list them.

set shell := ["bash", "-euo", "pipefail", "-c"]

[private]
default:
    @just --list

[doc("Run the whole stack: embedded NATS and every service, supervised (Ctrl-C stops it)")]
up *args:
    uv run hms-ops up {{args}}

[doc("Lint, type-check, then run every test, two processes a file each (the README's test command)")]
test *args: lint typecheck
    uv run pytest -n 2 --dist loadfile {{args}}

[doc("Run the tests only, without lint and type-check")]
pytest *args:
    uv run pytest {{args}}

[doc("Ruff lint and format check")]
lint:
    uv run ruff check .
    uv run ruff format --check .

[doc("mypy --strict with the pydantic plugin over every package, its tests and the benchmarks")]
typecheck:
    uv run mypy contracts sdk stack services testing devtools bench tests examples conftest.py
    # a hyphenated service folder is no module name: its tests are a package `tests`, each
    # checked on its own (one run for all would see several packages named `tests`)
    for dir in services/*-*/tests; do uv run mypy $(find "$dir" -name '*.py'); done

[doc("Benchmarks: one JSON object per line, raw NATS baselines measured in the same run")]
bench *args:
    uv run python bench/run.py {{args}}

[doc("Generate docs/asyncapi.yaml, JSON Schemas and infra/nats/permissions.json from the contracts")]
docs:
    uv run python -m hms_devtools.docs

[doc("Before merging: `test`, then lock and generated docs are current and every benchmark still runs")]
check: test
    uv lock --check
    uv run python -m hms_devtools.docs --check
    uv run python bench/run.py --quick --repeats 1 > /dev/null
