"""Deploy a stage's stack to AWS, or destroy it: what ``make deploy`` and ``make destroy`` run.

    python stepfunctions/deploy.py deploy  --stage dev --artifact-bucket BUCKET [--alarm-email A]
                                           [--budget-usd N] [--region R] [--dry-run]
    python stepfunctions/deploy.py destroy --stage dev [--empty-bucket] [--bucket NAME] [--region R] [--dry-run]

**deploy** builds ``dist/`` with stepfunctions/package.sh, uploads the deployment zip and
the template with ``aws cloudformation package``/``deploy`` (the template is over the
51,200 bytes CloudFormation accepts inline, so it goes through the artifact bucket too),
then uploads the spot workers' wheelhouse (stepfunctions/wheelhouse.sh: the tilefan wheel,
its locked dependencies and worker-lock.txt) to ``s3://<JobsBucketName>/worker/`` and
prints the stack's outputs. The artifact bucket is one of yours, in the stack's region.

**destroy** terminates the stage's spot workers (instances tagged ``tilefan:fleet=<stack>``),
deletes the stack and waits for it. The jobs bucket and table are retained by their
DeletionPolicy; with ``--empty-bucket`` every object version and delete marker in the
bucket is deleted, then the bucket itself. The table is kept (its point-in-time backups
too); the command to delete it is printed.

AWS calls go through the ``aws`` CLI (and boto3 to empty the bucket), with your usual
credentials; ``--dry-run`` prints every command instead and calls nothing.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

FLEET_TAG = "tilefan:fleet"  # tilefan/adapters/aws/ec2_capacity.py tags each worker with it


class Shell:
    """Runs commands; ``placeholder`` is what a dry run returns for a command's output."""

    dry_run = False

    def run(self, argv: Sequence[str], *, placeholder: str = "") -> str:
        print("+ " + shlex.join(argv), flush=True)
        done = subprocess.run(list(argv), check=True, stdout=subprocess.PIPE if placeholder else None, text=True)
        return (done.stdout or "").strip()

    def note(self, text: str) -> None:
        print(text, flush=True)


class DryRun(Shell):
    dry_run = True

    def run(self, argv: Sequence[str], *, placeholder: str = "") -> str:
        print("+ " + shlex.join(argv), flush=True)
        return placeholder


def aws(args: argparse.Namespace, *words: str) -> list[str]:
    region = ["--region", args.region] if args.region else []
    return ["aws", *words, *region]


def stack_name(args: argparse.Namespace) -> str:
    return str(args.stack_name or f"tilefan-{args.stage}")


def stack_outputs(shell: Shell, args: argparse.Namespace, *keys: str, required: bool = True) -> dict[str, str]:
    """The stack's outputs named ``keys`` (a dry run answers ``<Key>`` for each). A stack
    whose creation failed has no outputs: only those ``required`` are an error then."""
    argv = aws(args, "cloudformation", "describe-stacks", "--stack-name", stack_name(args),
               "--query", "Stacks[0].Outputs", "--output", "json")
    dry = json.dumps([{"OutputKey": k, "OutputValue": f"<{k}>"} for k in keys])
    answer = json.loads(shell.run(argv, placeholder=dry) or "null") or []  # "null": no outputs at all
    found = {o["OutputKey"]: o["OutputValue"] for o in answer}
    missing = [k for k in keys if k not in found]
    if missing and required:
        raise SystemExit(f"deploy: stack {stack_name(args)} has no output {', '.join(missing)}")
    return {k: found[k] for k in keys if k in found}


def deploy(shell: Shell, args: argparse.Namespace) -> None:
    stack, out = stack_name(args), args.out
    shell.run(["env", f"STAGE={args.stage}", f"OUT={out}", "bash", "stepfunctions/package.sh"])
    shell.run(["env", f"OUT={out}", "bash", "stepfunctions/wheelhouse.sh"])
    prefix = ["--s3-bucket", args.artifact_bucket, "--s3-prefix", stack]
    shell.run(aws(args, "cloudformation", "package", "--template-file", f"{out}/sam.json", *prefix,
                  "--output-template-file", f"{out}/packaged.json", "--use-json"))
    overrides = []
    if args.alarm_email:
        overrides.append(f"AlarmEmail={args.alarm_email}")
    if args.budget_usd is not None:
        overrides.append(f"MonthlyBudgetUsd={args.budget_usd}")
    # CAPABILITY_IAM: the stack creates roles, none with a fixed name. Parameters not given
    # keep the stack's current values (and their defaults on a new stack).
    shell.run(aws(args, "cloudformation", "deploy", "--template-file", f"{out}/packaged.json",
                  "--stack-name", stack, *prefix, "--capabilities", "CAPABILITY_IAM",
                  "--no-fail-on-empty-changeset",
                  *(["--parameter-overrides", *overrides] if overrides else [])))
    bucket = stack_outputs(shell, args, "JobsBucketName")["JobsBucketName"]
    # The wheels first, the lock naming them last: a worker booting meanwhile finds either
    # the previous lock or a complete wheelhouse.
    shell.run(aws(args, "s3", "cp", f"{out}/worker/", f"s3://{bucket}/worker/", "--recursive",
                  "--exclude", "worker-lock.txt"))
    shell.run(aws(args, "s3", "cp", f"{out}/worker/worker-lock.txt", f"s3://{bucket}/worker/worker-lock.txt"))
    shell.run(aws(args, "cloudformation", "describe-stacks", "--stack-name", stack,
                  "--query", "Stacks[0].Outputs", "--output", "table"))
    if args.alarm_email:
        shell.note(f"{args.alarm_email} receives a confirmation email from SNS: alarms reach it once confirmed.")


def destroy(shell: Shell, args: argparse.Namespace, empty: Callable[[str], int]) -> None:
    stack = stack_name(args)
    if args.bucket:  # the stack may be gone already, and its outputs with it
        bucket, table = args.bucket, None
    else:
        named = stack_outputs(shell, args, "JobsBucketName", "JobsTableName", required=False)
        bucket, table = named.get("JobsBucketName"), named.get("JobsTableName")
    # Spot workers are launched by the capacity function, not by CloudFormation: stop them first.
    ids = shell.run(aws(args, "ec2", "describe-instances", "--filters", f"Name=tag:{FLEET_TAG},Values={stack}",
                        "Name=instance-state-name,Values=pending,running,stopping,stopped",
                        "--query", "Reservations[].Instances[].InstanceId", "--output", "text"),
                    placeholder="<instance-ids>").split()
    if ids:
        shell.run(aws(args, "ec2", "terminate-instances", "--instance-ids", *ids))
    shell.run(aws(args, "cloudformation", "delete-stack", "--stack-name", stack))
    shell.run(aws(args, "cloudformation", "wait", "stack-delete-complete", "--stack-name", stack))
    if bucket is None:
        shell.note("the stack had no JobsBucketName output (its creation failed?): "
                   "if a bucket was retained, `deploy.py destroy --empty-bucket --bucket NAME` removes it")
    elif args.empty_bucket:
        if shell.dry_run:
            shell.note(f"# empty s3://{bucket}: every object version and delete marker, 1,000 keys a request")
        else:
            shell.note(f"emptied s3://{bucket}: {empty(bucket)} object versions and delete markers")
        shell.run(aws(args, "s3api", "delete-bucket", "--bucket", bucket))
    else:
        shell.note(f"kept s3://{bucket} (retained); `make destroy EMPTY_BUCKET=1` empties and deletes it")
    if table:
        shell.note(f"kept table {table} (retained, with its backups); to delete it: "
                   + shlex.join(aws(args, "dynamodb", "delete-table", "--table-name", table)))


def empty_bucket(s3: Any, bucket: str, page_size: int = 1000) -> int:
    """Delete every object version and delete marker in ``bucket``; return how many.

    A versioned bucket keeps old versions and delete markers that ``aws s3 rm --recursive``
    leaves behind, and S3 refuses to delete a bucket that still holds any. An unversioned
    bucket lists its objects here too (version id ``null``).
    """
    deleted = 0
    while True:
        # Always the first page: what was listed is deleted before listing again, so no
        # continuation marker ever points at a version that is gone.
        page = s3.list_object_versions(Bucket=bucket, MaxKeys=page_size)
        keys = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]]
        if not keys:
            return deleted
        # DeleteObjects takes at most 1,000 keys; a page holds at most MaxKeys versions and markers.
        answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": keys[:1000], "Quiet": True})
        if answer.get("Errors"):
            raise SystemExit(f"deploy: could not delete from s3://{bucket}: {answer['Errors'][:3]}")
        deleted += len(keys[:1000])


def usd(text: str) -> str:
    """A budget as plain digits, and "0" for any zero: what the template's HasBudget compares with."""
    try:
        amount = Decimal(text)
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite() or amount < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of USD, 0 or more")
    return format(amount.normalize(), "f")


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="deploy.py", description=(__doc__ or "").split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("deploy", "destroy"):
        p = sub.add_parser(name)
        p.add_argument("--stage", default="dev")
        p.add_argument("--stack-name", help="default tilefan-STAGE")
        p.add_argument("--region", help="default: the AWS CLI's configured region")
        p.add_argument("--dry-run", action="store_true", help="print the commands; call nothing")
        if name == "deploy":
            p.add_argument("--artifact-bucket", required=True, help="an S3 bucket of yours for the package")
            p.add_argument("--alarm-email", help="subscribe this address to the alarm topic")
            p.add_argument("--budget-usd", type=usd, help="monthly cost budget in USD (0: none)")
            p.add_argument("--out", default="dist")
        else:
            p.add_argument("--empty-bucket", action="store_true", help="empty the retained jobs bucket, then delete it")
            p.add_argument("--bucket", help="the jobs bucket, when the stack (and its outputs) is already gone")
    args = parser.parse_args(argv)
    if args.command == "deploy" and not args.artifact_bucket:
        parser.error("an artifact bucket is needed (make deploy ARTIFACT_BUCKET=...)")
    for value in (args.stage, args.stack_name or "x"):
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,100}", value):
            parser.error(f"{value!r} is not a valid stage or stack name (letters, digits, hyphens)")
    return args


def main(argv: Sequence[str]) -> None:
    args = parse(argv)
    shell = DryRun() if args.dry_run else Shell()
    if args.command == "deploy":
        deploy(shell, args)
    else:
        def empty(bucket: str) -> int:
            import boto3  # the [aws] or [dev] extra

            return empty_bucket(boto3.client("s3", region_name=args.region), bucket)

        destroy(shell, args, empty)


if __name__ == "__main__":
    main(sys.argv[1:])
