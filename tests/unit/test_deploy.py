"""``make deploy`` / ``make destroy`` (stepfunctions/deploy.py) in dry-run mode: the build
commands and AWS calls they would make, in order, with nothing called and no account."""

from __future__ import annotations

import shlex

import pytest

from tests.stepfunctions_scripts import load

deploy = load("deploy")
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]


@pytest.fixture(autouse=True)
def no_account(monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials and no region, as on a fresh machine: a dry run needs neither."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                 "AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def commands(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[list[list[str]], list[str]]:
    """(the commands and calls printed, the other lines) of a dry run."""
    deploy.main([*argv, "--dry-run"])
    lines = capsys.readouterr().out.splitlines()
    return [shlex.split(line[2:]) for line in lines if line.startswith("+ ")], [
        line for line in lines if not line.startswith("+ ")]


def test_deploy_packages_uploads_deploys_then_ships_the_worker_wheelhouse(capsys: pytest.CaptureFixture[str]) -> None:
    ran, notes = commands(capsys, "deploy", "--stage", "prod", "--artifact-bucket", "my-artifacts",
                          "--region", "eu-west-1", "--alarm-email", "ops@example.com", "--budget-usd", "50")
    assert ran == [
        ["env", "STAGE=prod", "OUT=dist", "bash", "stepfunctions/package.sh"],
        ["env", "OUT=dist", "bash", "stepfunctions/wheelhouse.sh"],
        ["aws", "s3", "upload_file", "dist/deployment.zip", "s3://my-artifacts/tilefan-prod/<md5>.zip"],
        ["aws", "s3", "upload_file", "dist/packaged.json", "s3://my-artifacts/tilefan-prod/<md5>.template"],
        ["aws", "cloudformation", "create_change_set", "tilefan-prod",
         "https://my-artifacts.s3.eu-west-1.amazonaws.com/tilefan-prod/<md5>.template",
         "AlarmEmail=ops@example.com", "MonthlyBudgetUsd=50", *CAPABILITIES],
        ["aws", "cloudformation", "execute_change_set", "tilefan-prod"],
        ["aws", "cloudformation", "describe_stacks", "tilefan-prod"],
        ["aws", "s3", "upload_file", "dist/worker/<wheels>", "s3://<JobsBucketName>/worker/<wheels>"],
        ["aws", "s3", "upload_file", "dist/worker/worker-lock.txt", "s3://<JobsBucketName>/worker/worker-lock.txt"],
    ]
    assert notes[0].startswith("# deploy: no AWS credentials") and notes[0].endswith("a real run would stop here")
    assert notes[-1] == "ops@example.com receives a confirmation email from SNS: alarms reach it once confirmed."


def test_deploy_leaves_unset_parameters_to_the_stack(capsys: pytest.CaptureFixture[str]) -> None:
    ran, _ = commands(capsys, "deploy", "--artifact-bucket", "a")
    [change_set] = [c for c in ran if c[1:3] == ["cloudformation", "create_change_set"]]
    assert change_set[3] == "tilefan-dev" and change_set[5:] == CAPABILITIES


@pytest.mark.parametrize(("given", "passed"), [("0", "0"), ("0.0", "0"), ("12.50", "12.5"), ("1234567", "1234567"),
                                               ("1e3", "1000")])
def test_a_zero_budget_reaches_the_template_as_the_zero_its_condition_compares_with(
    capsys: pytest.CaptureFixture[str], given: str, passed: str,
) -> None:
    ran, _ = commands(capsys, "deploy", "--artifact-bucket", "a", "--budget-usd", given)
    [change_set] = [c for c in ran if c[1:3] == ["cloudformation", "create_change_set"]]
    assert change_set[5] == f"MonthlyBudgetUsd={passed}"


def test_destroy_stops_the_workers_then_deletes_the_stack_and_keeps_the_data(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ran, notes = commands(capsys, "destroy", "--stage", "dev")
    assert ran == [
        ["aws", "cloudformation", "describe_stacks", "tilefan-dev"],
        ["aws", "ec2", "describe_instances", "tag:tilefan:fleet=tilefan-dev"],
        ["aws", "ec2", "terminate_instances", "<instance-ids>"],
        ["aws", "cloudformation", "delete_stack", "tilefan-dev"],
    ]
    assert notes[1].startswith("kept s3://<JobsBucketName> (retained)")
    assert notes[2].endswith("delete_table(TableName='<JobsTableName>')")


def test_destroy_empties_and_deletes_the_bucket_only_when_asked_after_the_stack_is_gone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ran, notes = commands(capsys, "destroy", "--empty-bucket")
    assert ran[-1] == ["aws", "s3", "delete_bucket", "<JobsBucketName>"]
    assert ran[-2] == ["aws", "cloudformation", "delete_stack", "tilefan-dev"]
    assert notes[1] == "# empty s3://<JobsBucketName>: every object version and delete marker, 1,000 keys a request"


def test_destroy_of_a_stack_already_gone_takes_the_bucket_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    ran, notes = commands(capsys, "destroy", "--empty-bucket", "--bucket", "old-jobs")
    assert not any(c[1:3] == ["cloudformation", "describe_stacks"] for c in ran)
    assert ran[-1] == ["aws", "s3", "delete_bucket", "old-jobs"]
    assert len(notes) == 2  # the missing credentials, the emptying; no table to name


@pytest.mark.parametrize("argv", [
    ["deploy"],  # no artifact bucket
    ["deploy", "--artifact-bucket", ""],
    ["deploy", "--artifact-bucket", "a", "--stage", "dev; rm -rf /"],
    ["destroy", "--stack-name", "-x"],
    ["deploy", "--artifact-bucket", "a", "--budget-usd=-1"],
    ["deploy", "--artifact-bucket", "a", "--budget-usd", "nan"],
    ["deploy", "--artifact-bucket", "a", "--budget-usd", "ten"],
])
def test_bad_arguments_are_refused_before_any_command(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        deploy.main([*argv, "--dry-run"])
    assert "+ " not in capsys.readouterr().out


@pytest.mark.parametrize("command", [["deploy", "--artifact-bucket", "a"], ["destroy"]])
def test_a_real_run_without_credentials_or_region_stops_at_once_with_one_line(
    command: list[str], capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as stopped:
        deploy.main(command)
    assert stopped.value.code == ("deploy: no AWS credentials (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
                                  "AWS_SECRET_ACCESS_KEY) and no region (REGION=..., or AWS_DEFAULT_REGION)")
    assert capsys.readouterr().out == ""  # nothing packaged, nothing called


def test_a_region_given_on_the_command_line_leaves_only_the_credentials_missing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as stopped:
        deploy.main(["destroy", "--region", "eu-west-1"])
    assert stopped.value.code == ("deploy: no AWS credentials (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
                                  "AWS_SECRET_ACCESS_KEY)")
