"""Property-based fuzzing of the REST API from its own OpenAPI document, against a real
``tilefan serve`` process, with every schemathesis check: no 5xx, no answer the document
does not describe, schema-invalid requests refused and schema-valid ones accepted. The
project's schemathesis.toml relaxes a check only where the schema cannot say what the
server refuses, with the reason beside it; here, jobs the document says are valid are
accepted unless a limit the schema cannot state, such as shapes that must chain, refuses
them with a 400 that names it.

Bounded: a few examples per operation, small size limits on the server so accepted jobs
finish at once, and one worker.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from tests.e2e.served import serve
from tilefan.entrypoints.http.openapi import openapi_document

# The same settings as `schemathesis run` in this checkout.
CONFIG = SchemathesisConfig.from_path(Path(__file__).resolve().parents[2] / "schemathesis.toml")
schema = schemathesis.openapi.from_dict(openapi_document(), config=CONFIG)
SEEN: collections.Counter[tuple[str, int]] = collections.Counter()
# Why a schema-valid job may still be refused: what the schema cannot state.
NOT_IN_THE_SCHEMA = ("do not chain", "must match", "at most", "unknown upload", "has not received",
                     "no job", "larger than", "exceeds", "limit", "atom", "grid point")
# Accepted jobs finish at once, but a burst of them may queue past the default cap on one
# owner's jobs at once (every job here is the one local owner's): raise it out of the way.
LIMITS = {"TILEFAN_MAX_DIM": "16", "TILEFAN_MAX_MATRIX_ELEMENTS": "256", "TILEFAN_MAX_GRID_POINTS": "512",
          "TILEFAN_MAX_ATOMS": "32", "TILEFAN_MAX_CONCURRENT_JOBS": "10000"}


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(tmp_path_factory.mktemp("fuzz"), env=LIMITS) as served:
        yield f"http://127.0.0.1:{served.port}"
    print(f"\nschemathesis: {len({op for op, _ in SEEN})} operations, {sum(SEEN.values())} cases, "
          f"statuses {sorted(collections.Counter(s for _, s in SEEN.elements()).items())}")


def schema_valid_jobs_are_accepted(ctx: Any, response: Any, case: Any) -> None:
    if case.method.upper() != "POST" or case.path != "/jobs" or not case.meta.generation.mode.is_positive:
        return
    if response.status_code == 202:
        return
    error = response.json()["error"]
    assert response.status_code == 400 and any(why in error["message"] for why in NOT_IN_THE_SCHEMA), (
        f"a schema-valid job was refused: {response.status_code} {error} for {case.body!r}")


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_the_api_answers_every_generated_request_as_documented(case: Any, base_url: str) -> None:
    # No checks= : every check schemathesis has, as configured, plus this project's own.
    response = case.call_and_validate(
        base_url=base_url, headers={"Host": base_url.removeprefix("http://")},
        additional_checks=[schema_valid_jobs_are_accepted])
    SEEN[(case.operation.label, response.status_code)] += 1
