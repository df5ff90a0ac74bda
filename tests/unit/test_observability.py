"""The stack's alarms, alarm topic, budget and dashboard, read from the packaged template.

By default the template is assembled here the way stepfunctions/package.sh assembles it
before ``chalice package`` merges it (the dashboard inlined from dashboard.json), and the
functions are the entries Chalice generates (``Plan``, ``Tile``, ...). package.sh runs
this module again with ``TILEFAN_SAM_JSON=dist/sam.json``: the same checks then hold for
the template that is deployed, where each function is an ``AWS::Serverless::Function``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from tests.stepfunctions_scripts import load

ROOT = Path(__file__).resolve().parents[2]
CONFIG = json.loads((ROOT / ".chalice" / "config.json").read_text())
PSEUDO = {"AWS::Region", "AWS::AccountId", "AWS::Partition", "AWS::StackName", "AWS::URLSuffix"}


def _template() -> tuple[dict[str, Any], bool]:
    packaged = os.environ.get("TILEFAN_SAM_JSON")
    if packaged:
        return json.loads(Path(packaged).read_text()), True
    source = json.loads((ROOT / "stepfunctions" / "merge-template.json").read_text())
    dashboard = json.loads((ROOT / "stepfunctions" / "dashboard.json").read_text())
    return load("render_dashboard").with_dashboard(source, dashboard), False


TEMPLATE, PACKAGED = _template()
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
ALARMS = {name: r["Properties"] for name, r in RESOURCES.items() if r.get("Type") == "AWS::CloudWatch::Alarm"}
# Chalice's logical id of each function in .chalice/config.json: api_handler → APIHandler, mark_failed → MarkFailed.
FUNCTIONS = sorted("APIHandler" if f == "api_handler" else f.title().replace("_", "")
                   for f in CONFIG["lambda_functions"])
TOPIC = [{"Ref": "AlarmTopic"}]


def references(node: Any) -> set[str]:
    """The resources and parameters that ``node`` names by Ref, Fn::GetAtt or Fn::Sub."""
    if isinstance(node, list):
        return set().union(*map(references, node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found: set[str] = set()
    for key, value in node.items():
        if key == "Ref":
            found.add(value)
        elif key == "Fn::GetAtt":
            found.add(value[0] if isinstance(value, list) else value.split(".")[0])
        elif key == "Fn::Sub" and isinstance(value, str):
            found |= {name.split(".")[0] for name in re.findall(r"\$\{([^!}][^}]*)\}", value)}
        else:
            found |= references(value)
    return found


def single_metric_alarms(namespace: str, metric: str) -> dict[str, dict[str, Any]]:
    """Alarm name → its Dimensions as {name: value}, for the alarms on one metric."""
    return {name: {d["Name"]: d["Value"] for d in a["Dimensions"]} for name, a in ALARMS.items()
            if a.get("Namespace") == namespace and a.get("MetricName") == metric}


def test_the_functions_the_alarms_name_are_chalices() -> None:
    for name in FUNCTIONS:
        resource = RESOURCES[name]
        assert resource.get("Type") == ("AWS::Serverless::Function" if PACKAGED else None), name


def test_every_alarm_names_only_resources_and_parameters_of_the_stack() -> None:
    known = set(RESOURCES) | set(TEMPLATE["Parameters"]) | PSEUDO
    for name, alarm in ALARMS.items():
        assert references(alarm) - known == set(), name


def test_every_alarm_notifies_the_topic_on_one_bad_period() -> None:
    assert RESOURCES["AlarmTopic"]["Type"] == "AWS::SNS::Topic"
    assert len(ALARMS) == 3 + 1 + 2 * len(FUNCTIONS) + 3
    for name, alarm in ALARMS.items():
        assert alarm["AlarmActions"] == TOPIC and alarm["OKActions"] == TOPIC, name
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold"), name
        assert alarm["TreatMissingData"] == "notBreaching", name
        assert alarm["EvaluationPeriods"] == (1 if name != "TileThrottlesAlarm" else 3), name


def test_tile_throttles_alarm_only_when_sustained_since_concurrent_jobs_share_the_reservation() -> None:
    asl = json.loads((ROOT / "stepfunctions" / "tilefan.asl.json").read_text())
    map_concurrency = asl["States"]["DistributedMap"]["MaxConcurrency"]
    reserved = CONFIG["lambda_functions"]["tile"]["reserved_concurrency"]
    alarm = ALARMS["TileThrottlesAlarm"]
    # One job's map stays within the reservation, but two jobs together ask for twice it:
    # bursts of throttling are retried by design, so only 15 minutes of it alarms.
    assert map_concurrency <= reserved
    assert alarm["EvaluationPeriods"] == alarm.get("DatapointsToAlarm") == 3
    assert alarm["Period"] == 300


@pytest.mark.parametrize("metric", ["ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"])
def test_failed_timed_out_and_aborted_executions_alarm(metric: str) -> None:
    [dims] = single_metric_alarms("AWS/States", metric).values()
    assert dims == {"StateMachineArn": {"Ref": "StateMachine"}}  # Ref of a state machine is its ARN
    assert RESOURCES["StateMachine"]["Type"] == "AWS::StepFunctions::StateMachine"


def test_the_spot_dead_letter_queue_alarms_on_any_message() -> None:
    [(name, dims)] = single_metric_alarms("AWS/SQS", "ApproximateNumberOfMessagesVisible").items()
    assert dims == {"QueueName": {"Fn::GetAtt": ["SpotDeadLetterQueue", "QueueName"]}}
    assert ALARMS[name]["Statistic"] == "Maximum"
    redrive = RESOURCES["SpotQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["SpotDeadLetterQueue", "Arn"]}


@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_each_function_has_its_errors_and_throttles_alarm(metric: str) -> None:
    alarms = single_metric_alarms("AWS/Lambda", metric)
    assert sorted(d["FunctionName"]["Ref"] for d in alarms.values()) == FUNCTIONS
    assert all(list(d) == ["FunctionName"] and ALARMS[n]["Statistic"] == "Sum" for n, d in alarms.items())


@pytest.mark.parametrize("metric", ["ReadThrottleEvents", "WriteThrottleEvents"])
def test_the_jobs_table_alarms_on_throttled_reads_and_writes(metric: str) -> None:
    [dims] = single_metric_alarms("AWS/DynamoDB", metric).values()
    assert dims == {"TableName": {"Ref": "JobsTable"}}
    assert RESOURCES["JobsTable"]["Type"] == "AWS::DynamoDB::Table"


def test_dynamodb_system_errors_are_summed_over_every_operation_the_stores_make() -> None:
    # SystemErrors exists only per (TableName, Operation): the alarm adds one metric per operation.
    [alarm] = [a for a in ALARMS.values() if "Metrics" in a]
    parts = {m["Id"]: m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m}
    operations = set()
    for stat in parts.values():
        dims = {d["Name"]: d["Value"] for d in stat["Metric"]["Dimensions"]}
        assert (stat["Metric"]["Namespace"], stat["Metric"]["MetricName"]) == ("AWS/DynamoDB", "SystemErrors")
        assert dims["TableName"] == {"Ref": "JobsTable"} and stat["Stat"] == "Sum"
        operations.add(dims["Operation"])
    granted = set()
    for policy in ROOT.joinpath(".chalice").glob("policy-*.json"):
        granted |= set(re.findall(r'"dynamodb:(\w+)"', policy.read_text()))
    store = "".join((ROOT / "tilefan" / "adapters" / "aws" / name).read_text()
                    for name in ("dynamo_store.py", "dynamo_table.py"))
    assert granted <= operations and ("transact_write_items" in store) == ("TransactWriteItems" in operations)
    [total] = [m for m in alarm["Metrics"] if m.get("ReturnData")]
    assert total["Expression"] == " + ".join(f"FILL({i}, 0)" for i in parts)


def test_the_email_subscription_and_the_budget_exist_only_when_asked() -> None:
    conditions = TEMPLATE["Conditions"]
    assert conditions["HasAlarmEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}
    assert conditions["HasBudget"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "MonthlyBudgetUsd"}, "0"]}]}
    assert TEMPLATE["Parameters"]["AlarmEmail"]["Default"] == ""
    assert TEMPLATE["Parameters"]["MonthlyBudgetUsd"]["Default"] == 0
    subscription = RESOURCES["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"] == {"TopicArn": TOPIC[0], "Protocol": "email", "Endpoint": {"Ref": "AlarmEmail"}}
    budget = RESOURCES["MonthlyBudget"]
    assert budget["Condition"] == "HasBudget"
    spend = budget["Properties"]["Budget"]
    assert spend["BudgetLimit"] == {"Amount": {"Ref": "MonthlyBudgetUsd"}, "Unit": "USD"}
    assert spend["TimeUnit"] == "MONTHLY" and spend["BudgetType"] == "COST"
    for notification in budget["Properties"]["NotificationsWithSubscribers"]:
        assert notification["Subscribers"] == [{"SubscriptionType": "SNS", "Address": TOPIC[0]}]


def test_the_topic_policy_lets_only_this_accounts_alarms_and_budgets_publish() -> None:
    statements = RESOURCES["AlarmTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert {s["Principal"]["Service"] for s in statements} == {"cloudwatch.amazonaws.com", "budgets.amazonaws.com"}
    for statement in statements:
        assert statement["Action"] == "sns:Publish" and statement["Resource"] == TOPIC[0]
        assert "AWS::AccountId" in json.dumps(statement["Condition"])


def test_the_topic_is_encrypted_with_a_key_that_only_this_accounts_alarms_and_budgets_may_use() -> None:
    assert RESOURCES["AlarmTopic"]["Properties"]["KmsMasterKeyId"] == {"Ref": "AlarmTopicKey"}
    key = RESOURCES["AlarmTopicKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    services = [s for s in key["KeyPolicy"]["Statement"] if "Service" in s["Principal"]]
    assert [sorted(s["Principal"]["Service"]) for s in services] == [
        ["budgets.amazonaws.com", "cloudwatch.amazonaws.com"]]
    # Enough to publish to an encrypted topic, nothing to manage the key with.
    assert services[0]["Action"] == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert "AWS::AccountId" in json.dumps(services[0]["Condition"])


def dashboard() -> tuple[dict[str, Any], str]:
    body = RESOURCES["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    return json.loads(body), body


def dashboard_metrics() -> list[list[Any]]:
    board, _ = dashboard()
    return [m for w in board["widgets"] if w["type"] == "metric" for m in w["properties"]["metrics"]
            if isinstance(m[0], str)]


def test_the_dashboard_names_only_resources_of_the_stack() -> None:
    board, body = dashboard()
    known = set(RESOURCES) | PSEUDO
    assert references({"Fn::Sub": body}) - known == set()
    for widget in board["widgets"]:
        if widget["type"] == "metric":
            assert widget["properties"]["region"] == "${AWS::Region}"


@pytest.mark.parametrize(("namespace", "metric", "dimension", "value"), [
    ("AWS/States", "ExecutionsStarted", "StateMachineArn", "${StateMachine}"),
    ("AWS/States", "ExecutionsFailed", "StateMachineArn", "${StateMachine}"),
    ("AWS/Lambda", "Duration", "FunctionName", "${Tile}"),
    ("AWS/Lambda", "ConcurrentExecutions", "FunctionName", "${Tile}"),
    ("AWS/Lambda", "Errors", "FunctionName", "${Tile}"),
    ("AWS/DynamoDB", "ConsumedWriteCapacityUnits", "TableName", "${JobsTable}"),
    ("AWS/DynamoDB", "WriteThrottleEvents", "TableName", "${JobsTable}"),
    ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "${SpotQueue.QueueName}"),
    ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "${SpotDeadLetterQueue.QueueName}"),
])
def test_the_dashboard_graphs(namespace: str, metric: str, dimension: str, value: str) -> None:
    assert [namespace, metric, dimension, value] in [m[:4] for m in dashboard_metrics()]


def test_the_dashboard_shows_every_alarm() -> None:
    board, _ = dashboard()
    [widget] = [w for w in board["widgets"] if w["type"] == "alarm"]
    assert sorted(widget["properties"]["alarms"]) == sorted(f"${{{name}.Arn}}" for name in ALARMS)
