"""A throttled AWS request becomes ``StoreThrottledError`` (which Step Functions retries by
name); every other failed store request stays ``StoreError``."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tilefan.adapters.aws.aws_call import THROTTLED, translated
from tilefan.errors import QueueError, StoreError, StoreThrottledError


def _failing(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "rate"}}, "UpdateItem")


@pytest.mark.parametrize("code", sorted(THROTTLED))
def test_throttling_codes_become_store_throttled_error(code: str) -> None:
    with pytest.raises(StoreThrottledError, match=code), translated("DynamoDB update_item failed", StoreError):
        raise _failing(code)


def test_other_codes_stay_store_error() -> None:
    with pytest.raises(StoreError) as info, translated("DynamoDB update_item failed", StoreError):
        raise _failing("AccessDeniedException")
    assert type(info.value) is StoreError


def test_only_store_requests_are_told_apart() -> None:
    with pytest.raises(QueueError) as info, translated("SQS send failed", QueueError):
        raise _failing("ThrottlingException")
    assert type(info.value) is QueueError
