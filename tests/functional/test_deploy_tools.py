"""``make destroy`` for real, short of AWS: the bucket emptied under moto, the commands run
through a stand-in ``aws`` program, and the make targets' variables reaching the script."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from tests.stepfunctions_scripts import FOLDER, load

ROOT = FOLDER.parent
deploy = load("deploy")


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


FAKE_AWS = """#!/bin/sh
# Records each call; answers the two queries destroy reads.
echo "$*" >> "$AWS_CALLS"
case "$*" in
  *"describe-stacks"*) echo '[{"OutputKey": "JobsBucketName", "OutputValue": "jobs-bkt"},
                               {"OutputKey": "JobsTableName", "OutputValue": "jobs-tbl"}]' ;;
  *"describe-instances"*) printf 'i-0a\\ti-0b\\ni-0c\\n' ;;
esac
"""


def test_destroy_runs_its_commands_and_hands_on_their_answers(tmp_path: Path) -> None:
    (tmp_path / "aws").write_text(FAKE_AWS)
    (tmp_path / "aws").chmod(0o755)
    calls = tmp_path / "calls"
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "AWS_CALLS": str(calls)}
    argv = [sys.executable, str(FOLDER / "deploy.py"), "destroy", "--stage", "qa", "--region", "eu-west-1"]
    out = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    ran = [shlex.split(line) for line in calls.read_text().splitlines()]
    assert [c[:2] for c in ran] == [["cloudformation", "describe-stacks"], ["ec2", "describe-instances"],
                                    ["ec2", "terminate-instances"], ["cloudformation", "delete-stack"],
                                    ["cloudformation", "wait"]]
    assert ran[2] == ["ec2", "terminate-instances", "--instance-ids", "i-0a", "i-0b", "i-0c", "--region", "eu-west-1"]
    assert all(c[-2:] == ["--region", "eu-west-1"] for c in ran)
    assert "kept s3://jobs-bkt (retained)" in out and "--table-name jobs-tbl --region eu-west-1" in out


def test_destroy_fails_when_an_aws_command_fails(tmp_path: Path) -> None:
    (tmp_path / "aws").write_text("#!/bin/sh\necho 'An error occurred (ValidationError)' >&2\nexit 255\n")
    (tmp_path / "aws").chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    done = subprocess.run([sys.executable, str(FOLDER / "deploy.py"), "destroy"], env=env, cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode != 0 and "delete-stack" not in done.stdout


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
