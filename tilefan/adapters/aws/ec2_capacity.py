"""Spot workers on EC2: count the fleet's live instances and launch more from the template.

Every instance is launched from the stack's launch template (which installs and starts
``tilefan worker``) as a one-time spot instance that terminates when interrupted or when
it shuts itself down after an idle period. IMDSv2 is required both in the template and in
the request, so a template edit cannot quietly reopen IMDSv1. Instances carry the fleet
tag, which is how ``running`` counts them against the stage's cap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tilefan.adapters.aws.aws_call import call, pages
from tilefan.errors import CapacityError

FLEET_TAG = "tilefan:fleet"
JOB_TAG = "tilefan:job"
ROLE_TAG = "tilefan:role"
LIVE_STATES = ("pending", "running")

SPOT_MARKET = {
    "MarketType": "spot",
    # No MaxPrice: pay the current spot price, capped at on-demand.
    "SpotOptions": {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"},
}
IMDS_V2_ONLY = {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1}


class Ec2SpotCapacity:
    def __init__(self, client: Any, launch_template_id: str, fleet: str, subnets: Sequence[str] = ()) -> None:
        self.client = client
        self.launch_template_id = launch_template_id
        self.fleet = fleet
        self.subnets = tuple(subnets)

    def _send(self, op: str, **params: Any) -> dict[str, Any]:
        return call(self.client, op, params, failed=f"EC2 {op} failed", fallback=CapacityError)

    def running(self) -> int:
        """Workers of this fleet that are starting or running."""
        params = {"Filters": [
            {"Name": f"tag:{FLEET_TAG}", "Values": [self.fleet]},
            {"Name": "instance-state-name", "Values": list(LIVE_STATES)},
        ]}
        replies = pages(self.client, "describe_instances", params, failed="EC2 describe_instances failed",
                        fallback=CapacityError)
        return sum(len(r.get("Instances", [])) for reply in replies for r in reply.get("Reservations", []))

    def launch(self, count: int, job_id: str) -> list[str]:
        """Up to ``count`` spot workers (fewer if EC2 has fewer); their instance ids.

        Tries each configured subnet in turn (spreading over zones finds spot capacity more
        often); raises CapacityError only when none could be launched at all.
        """
        if count < 1:
            return []
        launched: list[str] = []
        errors: list[str] = []
        for subnet in self.subnets or (None,):
            want = count - len(launched)
            if want < 1:
                break
            try:
                launched += self._launch(want, job_id, subnet)
            except CapacityError as exc:
                errors.append(str(exc))
        if not launched and errors:
            raise CapacityError("; ".join(errors))
        return launched

    def _launch(self, count: int, job_id: str, subnet: str | None) -> list[str]:
        tags = [
            {"Key": "Name", "Value": f"tilefan-worker-{self.fleet}"},
            {"Key": FLEET_TAG, "Value": self.fleet},
            {"Key": ROLE_TAG, "Value": "worker"},
            {"Key": JOB_TAG, "Value": job_id},
        ]
        params: dict[str, Any] = {
            "MinCount": 1,
            "MaxCount": count,
            "LaunchTemplate": {"LaunchTemplateId": self.launch_template_id, "Version": "$Latest"},
            "InstanceMarketOptions": SPOT_MARKET,
            "MetadataOptions": IMDS_V2_ONLY,
            "TagSpecifications": [{"ResourceType": kind, "Tags": tags} for kind in ("instance", "volume")],
        }
        if subnet:
            params["SubnetId"] = subnet
        reply = self._send("run_instances", **params)
        return [str(i["InstanceId"]) for i in reply.get("Instances", [])]
