"""The spot worker's per-tile wall-clock limit is a setting: parsed, bounded, and handed to the worker loop."""

from __future__ import annotations

import pytest

from tilefan import bootstrap, settings
from tilefan.errors import InvalidSpecError
from tilefan.runtimes.spot.worker import WorkerOptions


def test_the_tile_limit_defaults_to_an_hour_and_reaches_the_worker_options() -> None:
    spot = settings.spot_settings({})
    assert spot.tile_limit_s == 3600.0 == WorkerOptions().tile_limit_s
    assert bootstrap.spot_worker_options(spot, "w").tile_limit_s == 3600.0


def test_the_default_tile_limit_is_kept_whatever_the_task_timeout() -> None:
    assert settings.spot_settings({"TILEFAN_SPOT_TIMEOUT_S": "600"}).tile_limit_s == 3600.0


def test_the_tile_limit_comes_from_the_environment() -> None:
    spot = settings.spot_settings({"TILEFAN_WORKER_TILE_LIMIT_S": "90.5", "TILEFAN_WORKER_IDLE_S": "30"})
    options = bootstrap.spot_worker_options(spot, "spot:i-123")
    assert (options.tile_limit_s, options.idle_s, options.name) == (90.5, 30, "spot:i-123")


@pytest.mark.parametrize("env", [
    {"TILEFAN_WORKER_TILE_LIMIT_S": "0"},
    {"TILEFAN_WORKER_TILE_LIMIT_S": "an hour"},
    {"TILEFAN_WORKER_TILE_LIMIT_S": "-5"},
    {"TILEFAN_WORKER_TILE_LIMIT_S": "21600"},  # not below the spot task's timeout
    {"TILEFAN_WORKER_TILE_LIMIT_S": "700", "TILEFAN_SPOT_TIMEOUT_S": "600"},
])
def test_a_bad_tile_limit_names_the_variable(env: dict[str, str]) -> None:
    with pytest.raises(InvalidSpecError) as info:
        settings.spot_settings(env)
    assert info.value.field == "TILEFAN_WORKER_TILE_LIMIT_S"
