"""An answer that drifts from its documented response model never leaves the service."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tilefan.service.responses import documented

STORED = {"key": "uploads/0123456789abcdef/A.npy", "bytes": 128}


def test_a_documented_answer_is_returned_as_it_is() -> None:
    assert documented("upload_stored", dict(STORED)) == STORED


@pytest.mark.parametrize("drifted", [{**STORED, "etag": "x"}, {"key": STORED["key"]}, {**STORED, "bytes": "many"}])
def test_an_undocumented_key_a_missing_one_or_a_wrong_type_is_refused(drifted: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        documented("upload_stored", drifted)


def test_a_job_page_is_checked_job_by_job() -> None:
    with pytest.raises(ValidationError):
        documented("job_page", {"jobs": [{"job_id": "x"}], "next_cursor": None})
    assert documented("job_page", {"jobs": [], "next_cursor": None}) == {"jobs": [], "next_cursor": None}
