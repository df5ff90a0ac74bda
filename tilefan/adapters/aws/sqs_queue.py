"""The spot work queue: SQS messages that carry one tile and its Step Functions task token.

A message is in a worker's hands while it is invisible. The worker extends the visibility
while it computes, deletes the message once Step Functions has the answer, sets the
visibility to 0 to hand it to another worker, and moves a message it cannot use to the
dead-letter queue itself (with the reason as a message attribute) so that nothing is ever
dropped without a trace. The queue's redrive policy is the backstop for a message that
kills its workers before they can do that.
"""

from __future__ import annotations

from typing import Any

from tilefan.adapters.aws.aws_call import call
from tilefan.errors import QueueError
from tilefan.pipeline.spot_ports import QueueMessage

MAX_WAIT_S = 20  # SQS long polls for at most 20 s
MAX_VISIBILITY_S = 43_200
MAX_ATTRIBUTE_CHARS = 1_000




class SqsTileQueue:
    def __init__(self, client: Any, queue_url: str, dead_letter_url: str) -> None:
        self.client = client
        self.queue_url = queue_url
        self.dead_letter_url = dead_letter_url

    def _send(self, op: str, **params: Any) -> dict[str, Any]:
        return call(self.client, op, params, failed=f"SQS {op} failed", fallback=QueueError)

    def receive(self, wait_s: int, visibility_s: int) -> QueueMessage | None:
        """One message (long-polling up to ``wait_s``), hidden from others for ``visibility_s``."""
        reply = self._send(
            "receive_message", QueueUrl=self.queue_url, MaxNumberOfMessages=1,
            WaitTimeSeconds=max(0, min(wait_s, MAX_WAIT_S)), VisibilityTimeout=_visibility(visibility_s),
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        messages = reply.get("Messages") or []
        if not messages:
            return None
        m = messages[0]
        count = m.get("Attributes", {}).get("ApproximateReceiveCount", "1")
        return QueueMessage(
            message_id=str(m["MessageId"]), receipt=str(m["ReceiptHandle"]), body=str(m.get("Body", "")),
            receive_count=int(count) if str(count).isdigit() else 1,
        )

    def extend(self, message: QueueMessage, visibility_s: int) -> None:
        """Keep the message hidden for another ``visibility_s`` from now."""
        self._send(
            "change_message_visibility", QueueUrl=self.queue_url, ReceiptHandle=message.receipt,
            VisibilityTimeout=_visibility(visibility_s),
        )

    def release(self, message: QueueMessage) -> None:
        """Make the message visible again at once, for another worker."""
        self._send("change_message_visibility", QueueUrl=self.queue_url, ReceiptHandle=message.receipt,
                   VisibilityTimeout=0)

    def delete(self, message: QueueMessage) -> None:
        self._send("delete_message", QueueUrl=self.queue_url, ReceiptHandle=message.receipt)

    def dead_letter(self, message: QueueMessage, reason: str, worker: str) -> None:
        """Copy the message to the dead-letter queue with why, then delete it here.

        If the copy fails the original stays (and reappears after its visibility timeout),
        so a message is never lost between the two queues.
        """
        self._send(
            "send_message", QueueUrl=self.dead_letter_url, MessageBody=message.body or "(empty)",
            MessageAttributes={
                "reason": {"DataType": "String", "StringValue": reason[:MAX_ATTRIBUTE_CHARS] or "unknown"},
                "source_message_id": {"DataType": "String", "StringValue": message.message_id},
                "worker": {"DataType": "String", "StringValue": worker[:MAX_ATTRIBUTE_CHARS] or "unknown"},
            },
        )
        self.delete(message)


def _visibility(seconds: int) -> int:
    """
    >>> _visibility(-5), _visibility(120), _visibility(10**6)
    (0, 120, 43200)
    """
    return max(0, min(int(seconds), MAX_VISIBILITY_S))
