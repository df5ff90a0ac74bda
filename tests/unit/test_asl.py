"""The state machine definition and the deployment files around it, read as plain JSON.

cfn-lint checks the ASL's schema (stepfunctions/package.sh), not our conventions: Lambda
retries with jitter, no retry of bad input, no tile results in the state, every failure
through MarkFailed, and the spot branch's callback contract with ``tilefan worker``. Those
are checked here, with no AWS and no network.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib import lambdas
from tilefan.errors import error_types

ROOT = Path(__file__).resolve().parents[2]
ASL = json.loads((ROOT / "stepfunctions" / "tilefan.asl.json").read_text())
TEMPLATE = json.loads((ROOT / "stepfunctions" / "merge-template.json").read_text())
CONFIG = json.loads((ROOT / ".chalice" / "config.json").read_text())

LAMBDA_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}
STEP_FUNCTIONS = {  # placeholder → the app.py function it invokes
    "PlanFunctionArn": "plan",
    "CapacityFunctionArn": "capacity",
    "TileFunctionArn": "tile",
    "ReduceFunctionArn": "reduce",
    "MarkFailedFunctionArn": "mark_failed",
}


def walk_states(machine: dict[str, Any] = ASL) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every state, including those inside Map item processors."""
    for name, state in machine["States"].items():
        yield name, state
        if "ItemProcessor" in state:
            yield from walk_states(state["ItemProcessor"])


LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
SQS_CALLBACK = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"


def tasks() -> list[tuple[str, dict[str, Any]]]:
    """The Lambda tasks (the spot branch's SQS tasks are ``spot_tasks``)."""
    return [(n, s) for n, s in walk_states() if s["Type"] == "Task" and s["Resource"] == LAMBDA_INVOKE]


def spot_tasks() -> list[tuple[str, dict[str, Any]]]:
    return [(n, s) for n, s in walk_states() if s["Type"] == "Task" and s["Resource"] == SQS_CALLBACK]


def tile_tasks() -> list[tuple[str, dict[str, Any]]]:
    return [(n, s) for n, s in tasks() if s["Parameters"]["FunctionName"] == "${TileFunctionArn}"]


def maps() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in walk_states() if s["Type"] == "Map"}


def retrier_for(task: dict[str, Any], error: str) -> dict[str, Any] | None:
    """The retrier Step Functions applies to ``error``: the first that names it, or a
    States.TaskFailed/States.ALL catch-all (States.* errors other than those match only by name)."""
    for retrier in task.get("Retry", []):
        names = retrier["ErrorEquals"]
        if error in names or "States.ALL" in names:
            return retrier
        if "States.TaskFailed" in names and not error.startswith("States."):
            return retrier
    return None


def json_text(value: Any) -> str:
    return json.dumps(value)


# --------------------------------------------------------------------------- shape


def test_every_transition_lands_on_a_state_in_its_own_scope() -> None:
    def check(machine: dict[str, Any]) -> None:
        names = set(machine["States"])
        assert machine["StartAt"] in names
        reached = {machine["StartAt"]}
        for state in machine["States"].values():
            targets = [state.get("Next"), state.get("Default")]
            targets += [c["Next"] for c in state.get("Choices", []) + state.get("Catch", [])]
            for target in filter(None, targets):
                assert target in names
                reached.add(target)
            assert state["Type"] in ("Succeed", "Fail", "Choice") or "Next" in state or state.get("End") is True
            if "ItemProcessor" in state:
                check(state["ItemProcessor"])
        assert reached == names, f"unreachable states: {names - reached}"

    check(ASL)


def test_every_task_is_a_lambda_invoke_or_the_spot_callback() -> None:
    every = [n for n, s in walk_states() if s["Type"] == "Task"]
    assert sorted(every) == sorted([n for n, _ in tasks()] + [n for n, _ in spot_tasks()])


def test_only_a_job_with_spot_tiles_launches_capacity_before_the_maps() -> None:
    need = ASL["States"][ASL["States"]["Plan"]["Next"]]
    assert need["Type"] == "Choice"
    assert need["Choices"] == [{"Variable": "$.spot_tiles", "NumericGreaterThan": 0, "Next": "LaunchSpotCapacity"}]
    assert need["Default"] == "ChooseMapMode"
    launch = ASL["States"]["LaunchSpotCapacity"]
    assert launch["Parameters"]["FunctionName"] == "${CapacityFunctionArn}"
    assert launch["Next"] == "ChooseMapMode"
    # Its small answer goes beside the plan output, which the maps still need whole.
    assert launch["ResultPath"] == "$.capacity" and set(launch["ResultSelector"]) == {"running.$", "launched.$"}


def test_the_choice_routes_the_plan_handlers_modes_to_the_two_maps() -> None:
    choice = ASL["States"]["ChooseMapMode"]
    assert choice["Type"] == "Choice"
    [rule] = choice["Choices"]
    assert rule == {"Variable": "$.mode", "StringEquals": lambdas.DISTRIBUTED, "Next": "DistributedMap"}
    assert choice["Default"] == "InlineMap"
    modes = {n: s["ItemProcessor"]["ProcessorConfig"]["Mode"] for n, s in maps().items()}
    assert modes == {"InlineMap": "INLINE", "DistributedMap": "DISTRIBUTED"}
    assert ASL["States"]["InlineMap"]["Next"] == ASL["States"]["DistributedMap"]["Next"] == "Reduce"
    assert ASL["States"]["Reduce"]["Next"] == "Succeeded"


def test_the_inline_map_reads_the_tile_list_from_the_state_at_most_40_at_once() -> None:
    inline = ASL["States"]["InlineMap"]
    assert inline["ItemsPath"] == "$.tiles"
    assert inline["MaxConcurrency"] == 40


def test_the_distributed_map_reads_the_items_the_plan_step_wrote_to_s3() -> None:
    dist = ASL["States"]["DistributedMap"]
    assert dist["ItemReader"] == {
        "Resource": "arn:aws:states:::s3:getObject",
        "ReaderConfig": {"InputType": "JSON"},
        "Parameters": {"Bucket.$": "$.items.bucket", "Key.$": "$.items.key"},
    }
    assert dist["ItemProcessor"]["ProcessorConfig"]["ExecutionType"] == "STANDARD"
    assert dist["ToleratedFailurePercentage"] == 0
    assert 40 < dist["MaxConcurrency"] <= 10_000


def test_no_map_batches_items() -> None:
    # moto's ASL parser rejects ItemBatcher, and a tile is already a whole Lambda's work.
    assert "ItemBatcher" not in json_text(ASL)


def test_no_tile_result_travels_through_the_state() -> None:
    for name, state in maps().items():
        assert "ResultPath" in state and state["ResultPath"] is None, name


# --------------------------------------------------------------------------- payloads


def test_every_map_item_carries_job_tile_route_the_parent_execution_and_the_spot_timeouts() -> None:
    for name, state in maps().items():
        assert state["ItemSelector"] == {
            "job_id.$": "$$.Map.Item.Value.job_id",
            "tile_id.$": "$$.Map.Item.Value.tile_id",
            "route.$": "$$.Map.Item.Value.route",
            "execution_id.$": "$$.Execution.Id",
            "heartbeat_seconds.$": "$.spot.heartbeat_seconds",
            "timeout_seconds.$": "$.spot.timeout_seconds",
        }, name


def test_every_task_sends_the_payload_its_handler_checks() -> None:
    expected = {
        "${PlanFunctionArn}": {"job_id", "execution_id"},
        "${CapacityFunctionArn}": {"job_id", "execution_id", "spot_tiles"},
        "${TileFunctionArn}": {"job_id", "tile_id", "execution_id"},
        "${ReduceFunctionArn}": {"job_id", "execution_id"},
        "${MarkFailedFunctionArn}": {"job_id", "execution_id", "error"},
    }
    for name, task in tasks():
        params = task["Parameters"]
        fields = {key.removesuffix(".$") for key in params["Payload"]}
        assert fields == expected[params["FunctionName"]], name
    # Tasks outside a map take the execution from the context; tiles get it from ItemSelector.
    for name, task in tasks():
        if "tile_id.$" not in task["Parameters"]["Payload"]:
            assert task["Parameters"]["Payload"]["execution_id.$"] == "$$.Execution.Id", name


# --------------------------------------------------------------------------- retries


def test_every_task_retries_lambda_service_errors_with_full_jitter() -> None:
    for name, task in tasks():
        for error in LAMBDA_ERRORS:
            retrier = retrier_for(task, error)
            assert retrier is not None, (name, error)
            assert retrier["JitterStrategy"] == "FULL", name
            assert retrier["BackoffRate"] == 2, name
            assert retrier["IntervalSeconds"] >= 1, name
            assert retrier["MaxAttempts"] >= 3, name


def test_tile_tasks_retry_transient_failures_a_few_times() -> None:
    assert len(tile_tasks()) == 2
    for name, task in tile_tasks():
        for error in ("StoreError", "ConnectionResetError", "States.TaskFailed"):
            retrier = retrier_for(task, error)
            assert retrier is not None and 1 <= retrier["MaxAttempts"] <= 3, (name, error)
            assert retrier["JitterStrategy"] == "FULL"


# The errors a step can raise are tilefan.errors' own (a door's, such as the HTTP client's
# ApiError, never reaches a Lambda); which others are imported depends on the test session.
STEP_ERRORS = {n: cls for n, cls in error_types().items() if cls.__module__ == "tilefan.errors"}


@pytest.mark.parametrize("error", sorted(n for n, cls in STEP_ERRORS.items() if not cls.retryable))
def test_tile_tasks_never_retry_errors_a_retry_cannot_fix(error: str) -> None:
    # The list is ours to keep in step with the error classes' ``retryable``: this test is
    # what fails when a new permanent error class is added and the ASL is not.
    for name, task in [*tile_tasks(), *spot_tasks()]:
        retrier = retrier_for(task, error)
        assert retrier is not None and retrier["MaxAttempts"] == 0, (name, error)


@pytest.mark.parametrize("error", sorted(n for n, cls in STEP_ERRORS.items() if cls.retryable))
def test_tile_tasks_retry_every_retryable_error_of_ours(error: str) -> None:
    for name, task in [*tile_tasks(), *spot_tasks()]:
        retrier = retrier_for(task, error)
        assert retrier is not None and retrier["MaxAttempts"] >= 1, (name, error)


def test_only_tile_tasks_retry_task_failures() -> None:
    tiles = {name for name, _ in tile_tasks()} | {name for name, _ in spot_tasks()}
    for name, task in tasks():
        if name not in tiles:
            assert retrier_for(task, "StoreError") is None, name


# --------------------------------------------------------------------------- failure path


def test_plan_maps_and_reduce_catch_everything_into_mark_failed() -> None:
    for name in ("Plan", "LaunchSpotCapacity", "InlineMap", "DistributedMap", "Reduce"):
        assert ASL["States"][name]["Catch"] == [
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "MarkFailed"}
        ], name


def test_mark_failed_keeps_the_error_and_fails_the_execution_with_it() -> None:
    mark = ASL["States"]["MarkFailed"]
    assert mark["Parameters"]["Payload"]["error.$"] == "$.error"
    assert mark["ResultPath"] is None  # $.error survives for the Fail state
    assert "Catch" not in mark
    fail = ASL["States"][mark["Next"]]
    assert fail == {**fail, "Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}


# --------------------------------------------------------------------------- the template around it


def test_every_placeholder_has_a_substitution_and_every_substitution_is_used() -> None:
    used = set(re.findall(r"\$\{(\w+)\}", json_text(ASL)))
    substitutions = TEMPLATE["Resources"]["StateMachine"]["Properties"]["DefinitionSubstitutions"]
    assert used == set(substitutions)


def test_substitutions_name_the_functions_chalice_generates_for_app_py() -> None:
    from chalice.utils import to_cfn_resource_name

    substitutions = TEMPLATE["Resources"]["StateMachine"]["Properties"]["DefinitionSubstitutions"]
    for placeholder, function in STEP_FUNCTIONS.items():
        assert substitutions[placeholder] == {"Fn::GetAtt": [to_cfn_resource_name(function), "Arn"]}


def test_deep_merged_entries_match_chalice_functions() -> None:
    # Entries without a Type are merged into resources chalice generates; a typo would
    # leave a resource without a Type (cfn-lint would also refuse it).
    from chalice.utils import to_cfn_resource_name

    partial = {name for name, res in TEMPLATE["Resources"].items() if "Type" not in res}
    assert partial == {to_cfn_resource_name(f) for f in STEP_FUNCTIONS.values()} | {"APIHandler", "RestAPI"}


def test_the_state_machine_role_invokes_exactly_the_five_step_functions_and_queues_spot_tiles() -> None:
    [policy] = TEMPLATE["Resources"]["StateMachineRole"]["Properties"]["Policies"]
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    invoke = statements["InvokeStepFunctions"]
    assert invoke["Action"] == "lambda:InvokeFunction"
    invoked = sorted(r["Fn::GetAtt"][0] for r in invoke["Resource"])
    assert invoked == ["Capacity", "MarkFailed", "Plan", "Reduce", "Tile"]
    assert statements["QueueSpotTiles"] == {"Sid": "QueueSpotTiles", "Effect": "Allow", "Action": "sqs:SendMessage",
                                            "Resource": {"Fn::GetAtt": ["SpotQueue", "Arn"]}}
    assert statements["ReadTileItemLists"]["Resource"] == {"Fn::Sub": "${JobsBucket.Arn}/jobs/*"}


def test_every_function_has_its_own_policy_file_naming_only_template_resources() -> None:
    functions = CONFIG["lambda_functions"]
    assert set(functions) == set(STEP_FUNCTIONS.values()) | {"api_handler"}
    resources = set(TEMPLATE["Resources"]) | {"AWS::Partition", "AWS::Region", "AWS::AccountId"}
    for name, cfg in functions.items():
        assert CONFIG.get("autogen_policy") is False or cfg.get("autogen_policy") is False, name
        policy_text = (ROOT / ".chalice" / cfg["iam_policy_file"]).read_text()
        policy = json.loads(policy_text)
        assert policy["Version"] == "2012-10-17"
        refs = set(re.findall(r'"Ref": "([\w:]+)"', policy_text))
        refs |= set(re.findall(r'"Fn::GetAtt": \[\s*"(\w+)"', policy_text))
        refs |= {m.split(".")[0] for m in re.findall(r"\$\{([\w:.]+)\}", policy_text)}
        assert refs and refs <= resources, (name, refs - resources)
        assert '"*"' not in policy_text.replace('"Resource": "*"', ""), name  # no wildcard actions
        for statement in policy["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if statement["Resource"] == "*":  # only calls IAM cannot scope to a resource
                assert all(a.startswith(("xray:", "ec2:Describe")) for a in actions), (name, actions)


# The IAM actions each AWS call of our adapters needs (a call not listed fails the test below,
# so a new call cannot reach production without a grant).
ACTIONS_OF_CALL = {
    ("s3", "get_object"): {"s3:GetObject"},
    ("s3", "head_object"): {"s3:GetObject"},
    ("s3", "put_object"): {"s3:PutObject"},
    ("s3", "list_objects_v2"): {"s3:ListBucket"},
    ("s3", "delete_objects"): {"s3:DeleteObject"},
    ("s3", "create_multipart_upload"): {"s3:PutObject"},
    ("s3", "upload_part"): {"s3:PutObject"},
    ("s3", "upload_part_copy"): {"s3:PutObject", "s3:GetObject"},  # writes the output, reads the tile's block
    ("s3", "complete_multipart_upload"): {"s3:PutObject"},
    ("s3", "abort_multipart_upload"): {"s3:AbortMultipartUpload"},
    ("dynamodb", "get_item"): {"dynamodb:GetItem"},
    ("dynamodb", "put_item"): {"dynamodb:PutItem"},
    ("dynamodb", "update_item"): {"dynamodb:UpdateItem"},
    ("dynamodb", "query"): {"dynamodb:Query"},
    ("dynamodb", "batch_get_item"): {"dynamodb:BatchGetItem"},
    ("dynamodb", "transact_write_items"): set(),  # needs the actions of the items inside (below)
    ("stepfunctions", "start_execution"): {"states:StartExecution"},
    ("stepfunctions", "describe_execution"): {"states:DescribeExecution"},
    ("stepfunctions", "stop_execution"): {"states:StopExecution"},
    ("ec2", "describe_instances"): {"ec2:DescribeInstances"},
    ("ec2", "run_instances"): {"ec2:RunInstances", "ec2:CreateTags", "iam:PassRole"},
}
ADAPTERS = (("s3", "s3_store.py"), ("s3", "s3_uploads.py"), ("dynamodb", "dynamo_store.py"),
            ("dynamodb", "dynamo_table.py"), ("stepfunctions", "sfn_runner.py"), ("ec2", "ec2_capacity.py"))
TRANSACT_ITEM_ACTIONS = {
    "Put": "dynamodb:PutItem", "Update": "dynamodb:UpdateItem", "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}
SETUP_ONLY = {("dynamodb", "create_table"), ("dynamodb", "update_time_to_live")}  # tests' fixtures


def test_every_aws_call_of_the_adapters_is_granted_to_some_function() -> None:
    import botocore.session
    from botocore import xform_name

    session = botocore.session.get_session()
    granted: set[str] = set()
    for cfg in CONFIG["lambda_functions"].values():
        for statement in json.loads((ROOT / ".chalice" / cfg["iam_policy_file"]).read_text())["Statement"]:
            actions = statement["Action"]
            granted |= set(actions if isinstance(actions, list) else [actions])
    needed: set[str] = set()
    for service, filename in ADAPTERS:
        path = ROOT / "tilefan" / "adapters" / "aws" / filename
        source = path.read_text()  # a missing adapter file fails here, never skips
        operations = {xform_name(op) for op in session.get_service_model(service).operation_names}
        for call in sorted(set(re.findall(r'"([a-z0-9_]+)"', source)) & operations):
            if (service, call) in SETUP_ONLY:
                continue
            assert (service, call) in ACTIONS_OF_CALL, f"{service}.{call}: add its IAM action to ACTIONS_OF_CALL"
            needed |= ACTIONS_OF_CALL[(service, call)]
        if service == "dynamodb":
            items = re.findall(r'"(Put|Update|Delete|ConditionCheck)": \{', source)
            needed |= {TRANSACT_ITEM_ACTIONS[k] for k in items}
    assert needed, "found no AWS calls in the adapters"
    assert needed <= granted, f"no function may call: {sorted(needed - granted)}"


# --------------------------------------------------------------------------- the spot branch


def test_each_tile_takes_the_branch_its_route_names() -> None:
    for name, state in maps().items():
        processor = state["ItemProcessor"]
        route = processor["States"][processor["StartAt"]]
        assert route["Type"] == "Choice", name
        [rule] = route["Choices"]
        assert rule["Variable"] == "$.route" and rule["StringEquals"] == "spot", name
        spot = processor["States"][rule["Next"]]
        lam = processor["States"][route["Default"]]
        assert spot["Resource"] == SQS_CALLBACK, name
        assert lam["Parameters"]["FunctionName"] == "${TileFunctionArn}", name
    assert len(spot_tasks()) == 2


def test_spot_tasks_send_the_worker_its_tile_and_task_token() -> None:
    from tilefan.runtimes.spot.messages import parse_message

    for name, task in spot_tasks():
        params = task["Parameters"]
        assert params["QueueUrl"] == "${SpotQueueUrl}"
        body = params["MessageBody"]
        assert body == {
            "job_id.$": "$.job_id", "tile_id.$": "$.tile_id", "execution_id.$": "$.execution_id",
            "heartbeat_seconds.$": "$.heartbeat_seconds", "task_token.$": "$$.Task.Token",
        }, name
        # What Step Functions would send, as the worker reads it.
        sample = {"job_id": "j1", "tile_id": 2, "execution_id": "arn:x", "heartbeat_seconds": 60, "task_token": "t"}
        assert set(sample) == {k.removesuffix(".$") for k in body}
        task_ = parse_message(json.dumps(sample))
        assert (task_.job_id, task_.tile_id, task_.token, task_.heartbeat_s) == ("j1", 2, "t", 60)


def test_spot_tasks_set_heartbeat_and_timeout_from_the_plan_output() -> None:
    from tilefan.bootstrap import AwsSettings

    settings = AwsSettings(bucket="b", table="t", state_machine_arn="", region="us-east-1")
    out = lambdas.plan_output("j", "arn:x", [{"job_id": "j", "tile_id": 0, "route": "spot"}], settings)
    assert out["spot_tiles"] == 1
    assert 0 < out["spot"]["heartbeat_seconds"] < out["spot"]["timeout_seconds"]
    for name, task in spot_tasks():
        # Paths, so a deployment (and a test) sets them through the plan step's settings.
        assert task["HeartbeatSecondsPath"] == "$.heartbeat_seconds", name
        assert task["TimeoutSecondsPath"] == "$.timeout_seconds", name
        assert "HeartbeatSeconds" not in task and "TimeoutSeconds" not in task


def test_spot_tasks_retry_a_lost_or_interrupted_worker_but_not_bad_input_or_the_whole_timeout() -> None:
    for name, task in spot_tasks():
        for error in ("States.HeartbeatTimeout", "Spot.Interrupted"):
            retrier = retrier_for(task, error)
            assert retrier is not None and retrier["MaxAttempts"] >= 3, (name, error)
            assert retrier["JitterStrategy"] == "FULL"
        for error in ("InvalidSpecError", "JobNotFoundError", "TileFailedError", "BlobNotFoundError"):
            retrier = retrier_for(task, error)
            assert retrier is not None and retrier["MaxAttempts"] == 0, (name, error)
        # TimeoutSeconds covers queueing, boot and compute: a retry would start all over.
        assert retrier_for(task, "States.Timeout") is None, name
        for error in ("SQS.SdkClientException", "SQS.AmazonSQSException"):
            retrier = retrier_for(task, error)
            assert retrier is not None and retrier["MaxAttempts"] >= 3 and retrier["BackoffRate"] == 2, name


def test_the_spot_queue_dead_letters_and_hides_a_message_while_a_worker_has_it() -> None:
    queue = TEMPLATE["Resources"]["SpotQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["SpotDeadLetterQueue", "Arn"]}
    assert 2 <= queue["RedrivePolicy"]["maxReceiveCount"] <= 10
    from tilefan.bootstrap import SpotSettings

    # A message outlives the task that waits on it, and stays hidden while a worker beats.
    assert queue["MessageRetentionPeriod"] > SpotSettings().timeout_s
    assert queue["VisibilityTimeout"] >= SpotSettings().visibility_s


def test_the_launch_template_requires_imdsv2_and_starts_the_worker() -> None:
    data = TEMPLATE["Resources"]["WorkerLaunchTemplate"]["Properties"]["LaunchTemplateData"]
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["MetadataOptions"]["HttpPutResponseHopLimit"] == 1  # containers on the worker get no token
    assert data["InstanceInitiatedShutdownBehavior"] == "terminate"  # an idle worker's poweroff ends it
    assert data["IamInstanceProfile"] == {"Arn": {"Fn::GetAtt": ["WorkerInstanceProfile", "Arn"]}}
    script = data["UserData"]["Fn::Base64"]["Fn::Sub"]
    assert script.startswith("#!/bin/bash\n")
    assert "ExecStart=/opt/tilefan/bin/tilefan worker" in script and "SuccessAction=poweroff" in script
    assert "trap 'shutdown -h now' ERR" in script  # a worker that cannot start does not idle at a cost
    for name in ("TILEFAN_BUCKET", "TILEFAN_TABLE", "TILEFAN_SPOT_QUEUE_URL", "TILEFAN_SPOT_DLQ_URL"):
        assert f"{name}=${{" in script, name
    # Every ${...} in the script is something Fn::Sub resolves.
    names = set(re.findall(r"\$\{([\w:]+)\}", script))
    assert names <= set(TEMPLATE["Resources"]) | set(TEMPLATE["Parameters"]) | {"AWS::Region", "AWS::StackName"}


def worker_statements() -> dict[str, dict[str, Any]]:
    [policy] = TEMPLATE["Resources"]["WorkerRole"]["Properties"]["Policies"]
    return {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}


def test_the_worker_role_is_limited_to_the_job_prefixes_the_queue_and_the_task_token_calls() -> None:
    statements = worker_statements()
    resources = json_text([s["Resource"] for s in statements.values()])
    assert "${JobsBucket.Arn}/*" not in resources  # prefixes only, never the whole bucket
    assert statements["WriteTileParts"]["Resource"] == {"Fn::Sub": "${JobsBucket.Arn}/jobs/*"}
    assert statements["TakeWork"]["Resource"] == {"Fn::GetAtt": ["SpotQueue", "Arn"]}
    assert statements["DeadLetterBadWork"]["Resource"] == {"Fn::GetAtt": ["SpotDeadLetterQueue", "Arn"]}
    # The task-token calls name no resource type in IAM, so they are the only "*".
    for sid, statement in statements.items():
        if statement["Resource"] == "*":
            assert sid == "AnswerTaskTokens"
            assert sorted(statement["Action"]) == ["states:SendTaskFailure", "states:SendTaskHeartbeat",
                                                   "states:SendTaskSuccess"]


WORKER_CALLS = {
    ("sqs", "receive_message"): {"sqs:ReceiveMessage"},
    ("sqs", "change_message_visibility"): {"sqs:ChangeMessageVisibility"},
    ("sqs", "delete_message"): {"sqs:DeleteMessage"},
    ("sqs", "send_message"): {"sqs:SendMessage"},
    ("stepfunctions", "send_task_heartbeat"): {"states:SendTaskHeartbeat"},
    ("stepfunctions", "send_task_success"): {"states:SendTaskSuccess"},
    ("stepfunctions", "send_task_failure"): {"states:SendTaskFailure"},
}
WORKER_ADAPTERS = {"sqs": "sqs_queue.py", "stepfunctions": "task_tokens.py"}


def test_every_aws_call_of_the_worker_is_granted_to_the_worker_role() -> None:
    import botocore.session
    from botocore import xform_name

    session = botocore.session.get_session()
    granted: set[str] = set()
    for statement in worker_statements().values():
        granted |= set(statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])
    needed: set[str] = set()
    for service, filename in WORKER_ADAPTERS.items():
        source = (ROOT / "tilefan" / "adapters" / "aws" / filename).read_text()
        operations = {xform_name(op) for op in session.get_service_model(service).operation_names}
        for call in sorted(set(re.findall(r'"([a-z0-9_]+)"', source)) & operations):
            assert (service, call) in WORKER_CALLS, f"{service}.{call}: add its IAM action to WORKER_CALLS"
            needed |= WORKER_CALLS[(service, call)]
    # The worker runs the tile Lambda's step: it needs that function's data access too.
    tile = json.loads((ROOT / ".chalice" / "policy-tile.json").read_text())["Statement"]
    for statement in tile:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        needed |= {a for a in actions if a.startswith(("s3:", "dynamodb:"))}
    assert needed and needed <= granted, f"the worker role lacks: {sorted(needed - granted)}"


# --------------------------------------------------------------------------- scale


def test_the_distributed_map_writes_child_results_to_s3_under_the_job() -> None:
    state = maps()["DistributedMap"]
    writer = state["ResultWriter"]
    assert writer["Resource"] == "arn:aws:states:::s3:putObject"
    # Static names: moto evaluates paths here against the map's results, AWS against its
    # input, so a path would mean different things in the two.
    assert writer["Parameters"] == {"Bucket": "${JobsBucketName}", "Prefix": "map-results"}
    substitutions = TEMPLATE["Resources"]["StateMachine"]["Properties"]["DefinitionSubstitutions"]
    assert substitutions["JobsBucketName"] == {"Ref": "JobsBucket"}
    # Only the writer's summary is left, and ResultPath null drops that too.
    assert state["ResultPath"] is None
    role = TEMPLATE["Resources"]["StateMachineRole"]["Properties"]["Policies"]
    statements = [s for p in role for s in p["PolicyDocument"]["Statement"]]
    [grant] = [s for s in statements if s.get("Sid") == "WriteMapResults"]
    assert "s3:PutObject" in grant["Action"]
    assert grant["Resource"] == {"Fn::Sub": "${JobsBucket.Arn}/map-results/*"}


def test_plan_and_reduce_retry_store_throttling_by_its_error_name() -> None:
    from tilefan.errors import StoreError, StoreThrottledError, error_types

    assert error_types()["StoreThrottledError"] is StoreThrottledError and issubclass(StoreThrottledError, StoreError)
    for name in ("Plan", "Reduce"):
        retrier = retrier_for(ASL["States"][name], "StoreThrottledError")
        assert retrier is not None and retrier["MaxAttempts"] >= 3 and retrier["JitterStrategy"] == "FULL", name
        # A store error that is not throttling is not retried: it would fail the same way.
        assert retrier_for(ASL["States"][name], "StoreError") is None, name


def test_the_execution_has_a_timeout_longer_than_any_one_step() -> None:
    timeout = ASL["TimeoutSeconds"]
    assert isinstance(timeout, int) and 900 < timeout <= 86_400
