"""Errors cross process boundaries by pickle: each comes back as the same class, message
and attributes, whatever its constructor takes."""

from __future__ import annotations

import pickle

import pytest

from tilefan import errors
from tilefan.errors import TilefanError

# One instance of every error class, built through its own constructor.
SAMPLES: list[TilefanError] = [
    errors.InvalidSpecError("tile", "must be positive"),
    errors.JobNotFoundError("j-1"),
    errors.BlobNotFoundError("inputs/a.npy"),
    errors.ConflictError("tile 3 already done"),
    errors.TooManyJobsError(4),
    errors.IncompleteJobError("j-2", list(range(12)), "missing"),
    errors.TileFailedError(7, "kernel crashed"),
    errors.StoreThrottledError("slow down"),
    errors.InvalidBlobError("b.npy", "not a .npy file"),
    errors.VerificationFailedError({"kind": "freivalds", "ok": False}),
    errors.ReportedError("tile_failed", "tile 2: boom", None, 2),
]


@pytest.mark.parametrize("error", SAMPLES, ids=lambda e: type(e).__name__)
def test_an_error_survives_pickle(error: TilefanError) -> None:
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error)
    assert str(again) == str(error)
    assert again.args == error.args
    assert vars(again) == vars(error)
    assert again.code == error.code


def test_the_samples_cover_every_constructor_that_takes_arguments() -> None:
    sampled = {type(e) for e in SAMPLES}
    own_init = {cls for cls in errors.error_types().values()
                if cls.__module__ == errors.__name__ and "__init__" in vars(cls)}
    assert own_init <= sampled
