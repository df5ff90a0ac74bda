"""``make deploy`` / ``make destroy`` (stepfunctions/deploy.py) in dry-run mode: the AWS CLI
commands they would run, in order, with nothing called."""

from __future__ import annotations

import shlex

import pytest

from tests.stepfunctions_scripts import load

deploy = load("deploy")


def commands(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[list[list[str]], list[str]]:
    """(the commands printed, the other lines) of a dry run."""
    deploy.main([*argv, "--dry-run"])
    lines = capsys.readouterr().out.splitlines()
    return [shlex.split(line[2:]) for line in lines if line.startswith("+ ")], [
        line for line in lines if not line.startswith("+ ")]


def test_deploy_packages_uploads_deploys_then_ships_the_worker_wheelhouse(capsys: pytest.CaptureFixture[str]) -> None:
    ran, notes = commands(capsys, "deploy", "--stage", "prod", "--artifact-bucket", "my-artifacts",
                          "--region", "eu-west-1", "--alarm-email", "ops@example.com", "--budget-usd", "50")
    region = ["--region", "eu-west-1"]
    assert ran == [
        ["env", "STAGE=prod", "OUT=dist", "bash", "stepfunctions/package.sh"],
        ["env", "OUT=dist", "bash", "stepfunctions/wheelhouse.sh"],
        ["aws", "cloudformation", "package", "--template-file", "dist/sam.json", "--s3-bucket", "my-artifacts",
         "--s3-prefix", "tilefan-prod", "--output-template-file", "dist/packaged.json", "--use-json", *region],
        ["aws", "cloudformation", "deploy", "--template-file", "dist/packaged.json", "--stack-name", "tilefan-prod",
         "--s3-bucket", "my-artifacts", "--s3-prefix", "tilefan-prod", "--capabilities", "CAPABILITY_IAM",
         "--no-fail-on-empty-changeset",
         "--parameter-overrides", "AlarmEmail=ops@example.com", "MonthlyBudgetUsd=50", *region],
        ["aws", "cloudformation", "describe-stacks", "--stack-name", "tilefan-prod",
         "--query", "Stacks[0].Outputs", "--output", "json", *region],
        ["aws", "s3", "cp", "dist/worker/", "s3://<JobsBucketName>/worker/", "--recursive",
         "--exclude", "worker-lock.txt", *region],
        ["aws", "s3", "cp", "dist/worker/worker-lock.txt", "s3://<JobsBucketName>/worker/worker-lock.txt", *region],
        ["aws", "cloudformation", "describe-stacks", "--stack-name", "tilefan-prod",
         "--query", "Stacks[0].Outputs", "--output", "table", *region],
    ]
    assert notes == ["ops@example.com receives a confirmation email from SNS: alarms reach it once confirmed."]


def test_deploy_leaves_unset_parameters_to_the_stack(capsys: pytest.CaptureFixture[str]) -> None:
    ran, _ = commands(capsys, "deploy", "--artifact-bucket", "a")
    [cfn_deploy] = [c for c in ran if c[1:3] == ["cloudformation", "deploy"]]
    assert "--parameter-overrides" not in cfn_deploy and "--region" not in cfn_deploy
    assert cfn_deploy[cfn_deploy.index("--stack-name") + 1] == "tilefan-dev"


@pytest.mark.parametrize(("given", "passed"), [("0", "0"), ("0.0", "0"), ("12.50", "12.5"), ("1234567", "1234567"),
                                               ("1e3", "1000")])
def test_a_zero_budget_reaches_the_template_as_the_zero_its_condition_compares_with(
    capsys: pytest.CaptureFixture[str], given: str, passed: str,
) -> None:
    ran, _ = commands(capsys, "deploy", "--artifact-bucket", "a", "--budget-usd", given)
    [cfn_deploy] = [c for c in ran if c[1:3] == ["cloudformation", "deploy"]]
    assert cfn_deploy[-1] == f"MonthlyBudgetUsd={passed}"


def test_destroy_stops_the_workers_then_deletes_the_stack_and_keeps_the_data(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ran, notes = commands(capsys, "destroy", "--stage", "dev")
    assert [c[1:3] for c in ran] == [
        ["cloudformation", "describe-stacks"], ["ec2", "describe-instances"], ["ec2", "terminate-instances"],
        ["cloudformation", "delete-stack"], ["cloudformation", "wait"],
    ]
    assert "Name=tag:tilefan:fleet,Values=tilefan-dev" in ran[1]
    assert ran[4] == ["aws", "cloudformation", "wait", "stack-delete-complete", "--stack-name", "tilefan-dev"]
    assert not any("delete-bucket" in c for c in ran)
    assert notes[0].startswith("kept s3://<JobsBucketName> (retained)")
    assert notes[1].endswith("aws dynamodb delete-table --table-name '<JobsTableName>'")


def test_destroy_empties_and_deletes_the_bucket_only_when_asked_after_the_stack_is_gone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ran, notes = commands(capsys, "destroy", "--empty-bucket")
    assert ran[-1] == ["aws", "s3api", "delete-bucket", "--bucket", "<JobsBucketName>"]
    assert ran[-2][1:4] == ["cloudformation", "wait", "stack-delete-complete"]
    assert notes[0] == "# empty s3://<JobsBucketName>: every object version and delete marker, 1,000 keys a request"


def test_destroy_of_a_stack_already_gone_takes_the_bucket_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    ran, notes = commands(capsys, "destroy", "--empty-bucket", "--bucket", "old-jobs")
    assert not any(c[1:3] == ["cloudformation", "describe-stacks"] for c in ran)
    assert ran[-1] == ["aws", "s3api", "delete-bucket", "--bucket", "old-jobs"]
    assert len(notes) == 1  # no table to name


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


def test_destroy_deletes_a_stack_whose_creation_failed_and_left_no_outputs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class FailedStack(deploy.DryRun):
        def run(self, argv: list[str], *, placeholder: str = "") -> str:
            super().run(argv, placeholder=placeholder)
            return "null" if "describe-stacks" in argv else ""  # what the CLI prints for no outputs

    deploy.destroy(FailedStack(), deploy.parse(["destroy", "--empty-bucket"]), empty=lambda bucket: 0)
    lines = capsys.readouterr().out.splitlines()
    ran = [shlex.split(line[2:]) for line in lines if line.startswith("+ ")]
    assert [c[1:3] for c in ran] == [["cloudformation", "describe-stacks"], ["ec2", "describe-instances"],
                                     ["cloudformation", "delete-stack"], ["cloudformation", "wait"]]
    assert lines[-1] == ("the stack had no JobsBucketName output (its creation failed?): if a bucket was retained, "
                         "`deploy.py destroy --empty-bucket --bucket NAME` removes it")
