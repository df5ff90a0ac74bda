"""The inline-Map threshold is refused where the inline Map's history would near the
execution's event cap (tilefan/domain/sfn_limits.py)."""

from __future__ import annotations

import pytest

from tilefan.domain.sfn_limits import HISTORY_EVENT_CAP, INLINE_EVENTS_PER_JOB, INLINE_EVENTS_PER_TILE, max_inline_tiles
from tilefan.errors import InvalidSpecError
from tilefan.settings import parse_aws_settings

ENV = {"TILEFAN_BUCKET": "b", "TILEFAN_TABLE": "t"}


def test_the_largest_threshold_allowed_keeps_a_fifth_of_the_cap_spare() -> None:
    top = max_inline_tiles()
    assert INLINE_EVENTS_PER_JOB + INLINE_EVENTS_PER_TILE * top <= 0.8 * HISTORY_EVENT_CAP
    assert INLINE_EVENTS_PER_JOB + INLINE_EVENTS_PER_TILE * (top + 1) > 0.8 * HISTORY_EVENT_CAP


def test_a_threshold_up_to_the_limit_is_accepted() -> None:
    assert parse_aws_settings(ENV).distributed_threshold == 256
    top = str(max_inline_tiles())
    assert parse_aws_settings({**ENV, "TILEFAN_DISTRIBUTED_THRESHOLD": top}).distributed_threshold == int(top)


def test_a_threshold_past_the_limit_is_refused_naming_the_setting() -> None:
    with pytest.raises(InvalidSpecError) as info:
        parse_aws_settings({**ENV, "TILEFAN_DISTRIBUTED_THRESHOLD": str(max_inline_tiles() + 1)})
    assert info.value.field == "TILEFAN_DISTRIBUTED_THRESHOLD"
    assert "25,000" in info.value.message
