"""The EventBridge rule that ends the job of an execution that ended without marking it.

Read from the template as test_observability reads it: as assembled before ``chalice
package``, or, when package.sh runs this module with ``TILEFAN_SAM_JSON``, the packaged
template that is deployed. The rule matches only this state machine's executions that
timed out, were aborted or failed; its one target is the mark-failed function; and only
EventBridge, for this rule and in this account, may invoke that function through it.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.unit.test_observability import RESOURCES, references
from tilefan.pipeline.execution_end import DETAIL_TYPE, ENDINGS, SOURCE

ROOT = Path(__file__).resolve().parents[2]
RULE = RESOURCES["ExecutionEndedRule"]
PERMISSION = RESOURCES["ExecutionEndedPermission"]


def test_the_rule_matches_only_this_state_machines_executions_that_ended_unmarked() -> None:
    assert RULE["Type"] == "AWS::Events::Rule" and RULE["Properties"]["State"] == "ENABLED"
    pattern = RULE["Properties"]["EventPattern"]
    assert pattern["source"] == [SOURCE] and pattern["detail-type"] == [DETAIL_TYPE]
    assert sorted(pattern["detail"]["status"]) == sorted(ENDINGS) == ["ABORTED", "FAILED", "TIMED_OUT"]
    assert pattern["detail"]["stateMachineArn"] == [{"Ref": "StateMachine"}]
    assert RESOURCES["StateMachine"]["Type"] == "AWS::StepFunctions::StateMachine"
    # Rules on the default bus: no EventBusName means the account's default, where AWS services publish.
    assert "EventBusName" not in RULE["Properties"]


def test_the_rules_one_target_is_the_mark_failed_function_and_retries() -> None:
    (target,) = RULE["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["MarkFailed", "Arn"]}
    assert "MarkFailed" in RESOURCES
    assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] >= 3600
    assert "Input" not in target and "InputPath" not in target  # the handler reads the event itself


def test_only_this_rule_may_invoke_the_function_through_events() -> None:
    props = PERMISSION["Properties"]
    assert PERMISSION["Type"] == "AWS::Lambda::Permission"
    assert props["Action"] == "lambda:InvokeFunction" and props["Principal"] == "events.amazonaws.com"
    assert props["FunctionName"] == {"Ref": "MarkFailed"}
    assert props["SourceArn"] == {"Fn::GetAtt": ["ExecutionEndedRule", "Arn"]}
    assert props["SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert references(RULE) | references(PERMISSION) <= {*RESOURCES, "AWS::AccountId"}


def test_the_function_may_read_the_tiles_it_marks_cancelled_and_nothing_else_new() -> None:
    policy = json.loads((ROOT / ".chalice" / "policy-mark_failed.json").read_text())
    (records,) = [s for s in policy["Statement"] if s.get("Sid") == "JobRecords"]
    assert sorted(records["Action"]) == ["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:Query",
                                         "dynamodb:UpdateItem"]
    assert records["Resource"] == {"Fn::GetAtt": ["JobsTable", "Arn"]}
