"""Deploy a stage's stack to AWS, or destroy it: what ``make deploy`` and ``make destroy`` run.

    python stepfunctions/deploy.py deploy  --stage dev --artifact-bucket BUCKET [--alarm-email A]
                                           [--budget-usd N] [--region R] [--dry-run]
    python stepfunctions/deploy.py destroy --stage dev [--empty-bucket] [--bucket NAME] [--region R] [--dry-run]

**deploy** first checks that there are AWS credentials and a region (one line says what is
missing), then builds ``dist/`` with stepfunctions/package.sh, uploads the deployment zip
and the template to the artifact bucket (the template is over the 51,200 bytes
CloudFormation accepts inline), creates or updates the stack through a change set, then
uploads the spot workers' wheelhouse (stepfunctions/wheelhouse.sh: the tilefan wheel, its
locked dependencies and worker-lock.txt) to ``s3://<JobsBucketName>/worker/`` and prints
the stack's outputs. The artifact bucket is one of yours, in the stack's region.

**destroy** terminates the stage's spot workers (instances tagged ``tilefan:fleet=<stack>``),
deletes the stack and waits for it. The jobs bucket and table are retained by their
DeletionPolicy; with ``--empty-bucket`` every object version and delete marker in the
bucket is deleted, then the bucket itself. The table is kept (its point-in-time backups
too); the call to delete it is printed.

AWS calls go through boto3 (stepfunctions/aws_deploy.py) with your usual credentials: no
AWS CLI is needed. ``--dry-run`` prints every command and call instead and needs no account.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

# A sibling module: Python puts this script's folder on the path.
from aws_deploy import Boto3Aws, DeployCalls, DeployError, DryRunAws, missing_setup


class Shell:
    """Runs the local build commands (package.sh, wheelhouse.sh), echoing each."""

    dry_run = False

    def run(self, argv: Sequence[str]) -> None:
        print("+ " + shlex.join(argv), flush=True)
        subprocess.run(list(argv), check=True)

    def note(self, text: str) -> None:
        print(text, flush=True)


class DryRun(Shell):
    dry_run = True

    def run(self, argv: Sequence[str]) -> None:
        print("+ " + shlex.join(argv), flush=True)


def stack_name(args: argparse.Namespace) -> str:
    return str(args.stack_name or f"tilefan-{args.stage}")


def _digest(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def package_template(aws: DeployCalls, template: Path, bucket: str, prefix: str) -> dict[str, Any]:
    """The template with each function's local ``CodeUri`` uploaded to the artifact bucket
    and replaced by its ``s3://`` URI. Keys are the content's digest: a redeploy of the same
    code names the same object, so CloudFormation sees no change to the functions."""
    body: dict[str, Any] = json.loads(template.read_text())
    uploaded: dict[Path, str] = {}
    for resource in body["Resources"].values():
        props = resource.get("Properties", {})
        uri = props.get("CodeUri")
        if resource.get("Type") != "AWS::Serverless::Function" or not isinstance(uri, str) or uri.startswith("s3://"):
            continue
        local = (template.parent / uri).resolve()
        if local not in uploaded:
            key = f"{prefix}/{_digest(local.read_bytes())}{local.suffix}"
            aws.upload_file(local, bucket, key)
            uploaded[local] = f"s3://{bucket}/{key}"
        props["CodeUri"] = uploaded[local]
    return body


def deploy(shell: Shell, aws: DeployCalls, args: argparse.Namespace) -> None:
    stack, out = stack_name(args), Path(args.out)
    shell.run(["env", f"STAGE={args.stage}", f"OUT={out}", "bash", "stepfunctions/package.sh"])
    shell.run(["env", f"OUT={out}", "bash", "stepfunctions/wheelhouse.sh"])
    packaged = out / "packaged.json"
    if shell.dry_run:  # package.sh did not run: the uploads the real run makes
        aws.upload_file(out / "deployment.zip", args.artifact_bucket, f"{stack}/<md5>.zip")
        key = f"{stack}/<md5>.template"
    else:
        text = json.dumps(package_template(aws, out / "sam.json", args.artifact_bucket, stack), indent=1)
        packaged.write_text(text)
        key = f"{stack}/{_digest(text.encode())}.template"
    aws.upload_file(packaged, args.artifact_bucket, key)
    overrides = {}
    if args.alarm_email:
        overrides["AlarmEmail"] = args.alarm_email
    if args.budget_usd is not None:
        overrides["MonthlyBudgetUsd"] = args.budget_usd
    if not aws.deploy_stack(stack, aws.template_url(args.artifact_bucket, key), overrides):
        shell.note(f"stack {stack}: no changes to deploy")
    outputs = aws.outputs(stack)
    if "JobsBucketName" not in outputs:
        raise DeployError(f"stack {stack} has no output JobsBucketName")
    bucket = outputs["JobsBucketName"]
    # The wheels first, the lock naming them last: a worker booting meanwhile finds either
    # the previous lock or a complete wheelhouse.
    worker = out / "worker"
    files = sorted(worker.glob("*")) if not shell.dry_run else [worker / "<wheels>"]
    for path in [*[f for f in files if f.name != "worker-lock.txt"], worker / "worker-lock.txt"]:
        aws.upload_file(path, bucket, f"worker/{path.name}")
    for name, value in sorted(outputs.items()):
        shell.note(f"{name}: {value}")
    if args.alarm_email:
        shell.note(f"{args.alarm_email} receives a confirmation email from SNS: alarms reach it once confirmed.")


def destroy(shell: Shell, aws: DeployCalls, args: argparse.Namespace, empty: Callable[[str], int]) -> None:
    stack = stack_name(args)
    if args.bucket:  # the stack may be gone already, and its outputs with it
        bucket, table = args.bucket, None
    else:
        named = aws.outputs(stack)  # a stack whose creation failed has none
        bucket, table = named.get("JobsBucketName"), named.get("JobsTableName")
    # Spot workers are launched by the capacity function, not by CloudFormation: stop them first.
    ids = aws.fleet(stack)
    if ids:
        aws.terminate(ids)
    aws.delete_stack(stack)
    if bucket is None:
        shell.note("the stack had no JobsBucketName output (its creation failed?): "
                   "if a bucket was retained, `deploy.py destroy --empty-bucket --bucket NAME` removes it")
    elif args.empty_bucket:
        if shell.dry_run:
            shell.note(f"# empty s3://{bucket}: every object version and delete marker, 1,000 keys a request")
        else:
            shell.note(f"emptied s3://{bucket}: {empty(bucket)} object versions and delete markers")
        aws.delete_bucket(bucket)
    else:
        shell.note(f"kept s3://{bucket} (retained); `make destroy EMPTY_BUCKET=1` empties and deletes it")
    if table:
        shell.note(f"kept table {table} (retained, with its backups); to delete it: "
                   f"boto3.client('dynamodb').delete_table(TableName={table!r})")


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
        p.add_argument("--region", help="default: your AWS configuration's region (AWS_DEFAULT_REGION)")
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
    import boto3  # the [aws] or [dev] extra

    session = boto3.Session()
    problem = missing_setup(session, args.region)
    shell: Shell
    aws: DeployCalls
    if args.dry_run:
        shell, aws = DryRun(), DryRunAws(args.region or session.region_name)
        if problem:
            shell.note(f"# {problem}: a real run would stop here")
    elif problem:
        raise SystemExit(problem)  # before packaging anything
    else:
        real = Boto3Aws(session, args.region)
        shell, aws = Shell(), real
    try:
        if args.command == "deploy":
            deploy(shell, aws, args)
        else:
            destroy(shell, aws, args, lambda bucket: empty_bucket(real.s3(), bucket))
    except DeployError as exc:
        raise SystemExit(f"deploy: {exc}") from None


if __name__ == "__main__":
    main(sys.argv[1:])
