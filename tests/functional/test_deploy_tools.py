"""``make deploy`` and ``make destroy`` for real, short of AWS: S3 and EC2 under moto,
CloudFormation through botocore's Stubber (moto's CloudFormation cannot expand SAM, and the
Stubber checks every request against the service's own model), and the make targets'
variables reaching the script."""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from tests.stepfunctions_scripts import FOLDER, load

ROOT = FOLDER.parent
deploy = load("deploy")
aws_deploy = sys.modules["aws_deploy"]  # the module deploy.py imported, so its errors are the same classes


@pytest.mark.usefixtures("aws_credentials")
def test_emptying_a_versioned_bucket_removes_every_version_and_delete_marker_so_it_can_be_deleted() -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="jobs")
        s3.put_bucket_versioning(Bucket="jobs", VersioningConfiguration={"Status": "Enabled"})
        for i in range(7):
            s3.put_object(Bucket="jobs", Key=f"jobs/j{i % 3}/part.npy", Body=b"v%d" % i)  # 3 keys, 7 versions
        s3.delete_object(Bucket="jobs", Key="jobs/j0/part.npy")  # a delete marker
        s3.put_object(Bucket="jobs", Key="worker/tilefan-0.1.0-py3-none-any.whl", Body=b"wheel")
        # What `aws s3 rm --recursive` would see: only the current objects, not the old versions.
        assert s3.list_objects_v2(Bucket="jobs")["KeyCount"] == 3

        deleted = deploy.empty_bucket(s3, "jobs", page_size=3)  # several pages, as with >1,000 keys

        assert deleted == 7 + 1 + 1
        listing = s3.list_object_versions(Bucket="jobs")
        assert "Versions" not in listing and "DeleteMarkers" not in listing
        s3.delete_bucket(Bucket="jobs")
        assert "jobs" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


@pytest.mark.usefixtures("aws_credentials")
def test_emptying_an_unversioned_bucket_deletes_its_objects() -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="plain")
        for key in ("a", "b/c"):
            s3.put_object(Bucket="plain", Key=key, Body=b"x")
        assert deploy.empty_bucket(s3, "plain") == 2
        assert s3.list_objects_v2(Bucket="plain")["KeyCount"] == 0


# --------------------------------------------------------------------------- the AWS calls, for real

SAM = {
    "Transform": "AWS::Serverless-2016-10-31",
    "Resources": {
        "Plan": {"Type": "AWS::Serverless::Function", "Properties": {"CodeUri": "./deployment.zip"}},
        "Tile": {"Type": "AWS::Serverless::Function", "Properties": {"CodeUri": "./deployment.zip"}},
        "Already": {"Type": "AWS::Serverless::Function", "Properties": {"CodeUri": "s3://elsewhere/code.zip"}},
        "JobsBucket": {"Type": "AWS::S3::Bucket"},
    },
}


def stubbed_cloudformation() -> tuple[Any, Stubber]:
    client = boto3.client("cloudformation", region_name="us-east-1")
    return client, Stubber(client)


def stack(status: str, outputs: dict[str, str] | None = None,
          parameters: dict[str, str] | None = None) -> dict[str, Any]:
    """describe_stacks' answer for one stack."""
    return {"Stacks": [{
        "StackName": "tilefan-qa", "StackStatus": status, "CreationTime": datetime(2026, 1, 1),
        "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in (outputs or {}).items()],
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in (parameters or {}).items()]}]}


MISSING = {"service_error_code": "ValidationError", "service_message": "Stack with id tilefan-qa does not exist"}


@pytest.mark.usefixtures("aws_credentials")
def test_packaging_uploads_each_local_code_file_once_and_points_the_functions_at_it(tmp_path: Path) -> None:
    (tmp_path / "deployment.zip").write_bytes(b"PK zip")
    (tmp_path / "sam.json").write_text(json.dumps(SAM))
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="art")
        aws = aws_deploy.Boto3Aws(boto3.Session(), "us-east-1", clients={"s3": s3})
        body = deploy.package_template(aws, tmp_path / "sam.json", "art", "tilefan-qa")
        [key] = [o["Key"] for o in s3.list_objects_v2(Bucket="art")["Contents"]]
        assert s3.get_object(Bucket="art", Key=key)["Body"].read() == b"PK zip"
    assert key == f"tilefan-qa/{hashlib.md5(b'PK zip').hexdigest()}.zip"
    uris = {name: r.get("Properties", {}).get("CodeUri") for name, r in body["Resources"].items()}
    assert uris == {"Plan": f"s3://art/{key}", "Tile": f"s3://art/{key}", "Already": "s3://elsewhere/code.zip",
                    "JobsBucket": None}


def test_a_new_stack_is_created_through_a_change_set_with_the_parameters_given() -> None:
    cfn, stub = stubbed_cloudformation()
    url = "https://art.s3.us-east-1.amazonaws.com/tilefan-qa/x.template"
    stub.add_client_error("describe_stacks", **MISSING)
    stub.add_response("create_change_set", {"Id": "cs", "StackId": "st"}, {
        "StackName": "tilefan-qa", "ChangeSetName": "tilefan-qa-deploy", "ChangeSetType": "CREATE",
        "TemplateURL": url, "Capabilities": ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
        "Parameters": [{"ParameterKey": "AlarmEmail", "ParameterValue": "a@b.c"}]})
    stub.add_response("describe_change_set", {"Status": "CREATE_COMPLETE", "ChangeSetName": "tilefan-qa-deploy"})
    stub.add_response("execute_change_set", {}, {"StackName": "tilefan-qa", "ChangeSetName": "tilefan-qa-deploy"})
    stub.add_response("describe_stacks", stack("CREATE_COMPLETE"))
    with stub:
        aws = aws_deploy.Boto3Aws(boto3.Session(region_name="us-east-1"), None, clients={"cloudformation": cfn})
        assert aws.deploy_stack("tilefan-qa", url, {"AlarmEmail": "a@b.c"}) is True
    stub.assert_no_pending_responses()


def test_an_update_keeps_the_parameters_not_given_and_an_unchanged_stack_is_not_an_error() -> None:
    cfn, stub = stubbed_cloudformation()
    stub.add_response("describe_stacks", stack("UPDATE_COMPLETE", parameters={"AlarmEmail": "a@b.c",
                                                                              "MonthlyBudgetUsd": "20"}))
    stub.add_response("create_change_set", {"Id": "cs"}, {
        "StackName": "tilefan-qa", "ChangeSetName": "tilefan-qa-deploy", "ChangeSetType": "UPDATE",
        "TemplateURL": "https://t", "Capabilities": ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
        "Parameters": [{"ParameterKey": "MonthlyBudgetUsd", "ParameterValue": "0"},
                       {"ParameterKey": "AlarmEmail", "UsePreviousValue": True}]})
    failed = {"Status": "FAILED", "StatusReason": "The submitted information didn't contain changes."}
    stub.add_response("describe_change_set", failed)  # the waiter's poll
    stub.add_response("describe_change_set", failed)  # deploy_stack reads why
    stub.add_response("delete_change_set", {}, {"StackName": "tilefan-qa", "ChangeSetName": "tilefan-qa-deploy"})
    with stub:
        aws = aws_deploy.Boto3Aws(boto3.Session(region_name="us-east-1"), None, clients={"cloudformation": cfn})
        assert aws.deploy_stack("tilefan-qa", "https://t", {"MonthlyBudgetUsd": "0"}) is False
    stub.assert_no_pending_responses()


def test_a_failed_change_set_or_a_rolled_back_stack_stops_the_deploy_with_its_reason() -> None:
    cfn, stub = stubbed_cloudformation()
    stub.add_response("describe_stacks", stack("ROLLBACK_COMPLETE"))
    stub.add_client_error("describe_stacks", **MISSING)
    stub.add_response("create_change_set", {"Id": "cs"})
    failed = {"Status": "FAILED", "StatusReason": "Template error: unresolved resource JobsBucket"}
    stub.add_response("describe_change_set", failed)
    stub.add_response("describe_change_set", failed)
    stub.add_response("delete_change_set", {})
    with stub:
        aws = aws_deploy.Boto3Aws(boto3.Session(region_name="us-east-1"), None, clients={"cloudformation": cfn})
        with pytest.raises(aws_deploy.DeployError, match="is ROLLBACK_COMPLETE: run make destroy"):
            aws.deploy_stack("tilefan-qa", "https://t", {})
        with pytest.raises(aws_deploy.DeployError, match="failed: Template error: unresolved resource JobsBucket"):
            aws.deploy_stack("tilefan-qa", "https://t", {})


@pytest.mark.usefixtures("aws_credentials")
def test_deploy_uploads_the_package_deploys_and_ships_the_wheelhouse_lock_last(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    class Built(deploy.Shell):
        """package.sh and wheelhouse.sh, as far as deploy reads their output."""

        def run(self, argv: Sequence[str]) -> None:
            (tmp_path / "deployment.zip").write_bytes(b"zip")
            (tmp_path / "sam.json").write_text(json.dumps(SAM))
            (tmp_path / "worker").mkdir(exist_ok=True)
            for name in ("tilefan-0.1.0-py3-none-any.whl", "numpy-2.5.5-cp313.whl", "worker-lock.txt"):
                (tmp_path / "worker" / name).write_bytes(name.encode())

    cfn, stub = stubbed_cloudformation()
    stub.add_client_error("describe_stacks", **MISSING)
    stub.add_response("create_change_set", {"Id": "cs"})
    stub.add_response("describe_change_set", {"Status": "CREATE_COMPLETE"})
    stub.add_response("execute_change_set", {})
    stub.add_response("describe_stacks", stack("CREATE_COMPLETE"))
    stub.add_response("describe_stacks", stack("CREATE_COMPLETE", outputs={"JobsBucketName": "jobs"}))
    uploads: list[str] = []
    with mock_aws(), stub:
        s3 = boto3.client("s3", region_name="us-east-1")
        for bucket in ("art", "jobs"):
            s3.create_bucket(Bucket=bucket)
        aws = aws_deploy.Boto3Aws(boto3.Session(), "us-east-1", clients={"cloudformation": cfn, "s3": s3})
        real_upload = aws.upload_file
        aws.upload_file = lambda path, bucket, key: (uploads.append(f"{bucket}/{key}"), real_upload(path, bucket, key))
        args = deploy.parse(["deploy", "--stage", "qa", "--artifact-bucket", "art", "--out", str(tmp_path)])
        deploy.deploy(Built(), aws, args)
        packaged = json.loads(s3.get_object(Bucket="art", Key=uploads[1].split("/", 1)[1])["Body"].read())
        worker = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="jobs")["Contents"])
    assert uploads[0].startswith("art/tilefan-qa/") and uploads[1].endswith(".template")
    assert packaged["Resources"]["Plan"]["Properties"]["CodeUri"] == f"s3://{uploads[0]}"
    assert uploads[-1] == "jobs/worker/worker-lock.txt"  # the lock last
    assert worker == ["worker/numpy-2.5.5-cp313.whl", "worker/tilefan-0.1.0-py3-none-any.whl",
                      "worker/worker-lock.txt"]
    assert "JobsBucketName: jobs" in capsys.readouterr().out


@pytest.mark.usefixtures("aws_credentials")
def test_destroy_terminates_the_stacks_workers_only_then_deletes_the_stack() -> None:
    cfn, stub = stubbed_cloudformation()
    stub.add_response("describe_stacks", stack("CREATE_COMPLETE", outputs={"JobsBucketName": "jobs",
                                                                           "JobsTableName": "tbl"}))
    stub.add_response("delete_stack", {}, {"StackName": "tilefan-qa"})
    stub.add_client_error("describe_stacks", **MISSING)  # the waiter: gone
    with mock_aws(), stub:
        ec2 = boto3.client("ec2", region_name="us-east-1")
        image = "ami-12c6146b"  # one of moto's built-in images

        def launch(fleet: str) -> str:
            tags = [{"ResourceType": "instance", "Tags": [{"Key": "tilefan:fleet", "Value": fleet}]}]
            return str(ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, TagSpecifications=tags)
                       ["Instances"][0]["InstanceId"])

        ours, theirs = launch("tilefan-qa"), launch("tilefan-prod")
        aws = aws_deploy.Boto3Aws(boto3.Session(), "us-east-1", clients={"cloudformation": cfn, "ec2": ec2})
        assert aws.fleet("tilefan-qa") == [ours]
        deploy.destroy(deploy.Shell(), aws, deploy.parse(["destroy", "--stage", "qa"]), empty=lambda bucket: 0)
        states = {i["InstanceId"]: i["State"]["Name"] for r in ec2.describe_instances()["Reservations"]
                  for i in r["Instances"]}
    assert states == {ours: "terminated", theirs: "running"}
    stub.assert_no_pending_responses()


@pytest.mark.parametrize(("make_args", "script_args"), [
    (["deploy", "ARTIFACT_BUCKET=art", "STAGE=prod", "BUDGET_USD=20", "ALARM_EMAIL=a@b.c", "DRY_RUN=1"],
     ["deploy", "--stage", "prod", "--artifact-bucket", "art", "--alarm-email", "a@b.c", "--budget-usd", "20",
      "--dry-run"]),
    (["deploy", "ARTIFACT_BUCKET=art", "DRY_RUN=0"], ["deploy", "--stage", "dev", "--artifact-bucket", "art"]),
    (["destroy", "EMPTY_BUCKET=1", "REGION=eu-west-1"],
     ["destroy", "--stage", "dev", "--region", "eu-west-1", "--empty-bucket"]),
    (["destroy", "EMPTY_BUCKET=0"], ["destroy", "--stage", "dev"]),
])
def test_the_make_targets_pass_their_variables_on(make_args: list[str], script_args: list[str]) -> None:
    # -n prints the recipe without running it; -o: never (re)build the venv for this.
    recipe = subprocess.run(["make", "-n", "-o", ".venv/.installed-stamp", *make_args], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    [line] = [line for line in recipe.replace("\\\n", " ").splitlines() if "stepfunctions/deploy.py" in line]
    words = shlex.split(line)
    assert words[words.index("stepfunctions/deploy.py") + 1:] == script_args
