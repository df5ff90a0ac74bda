#!/usr/bin/env bash
# Build the CloudFormation (SAM) template and deployment zip for one stage, then lint them.
#
#   STAGE=prod stepfunctions/package.sh      # default STAGE=dev, output in dist/
#
# chalice package merges stepfunctions/merge-template.json into its own template. The state
# machine's definition lives in stepfunctions/tilefan.asl.json so that it can be read and
# tested on its own; this script inlines it (batched, see packaged_asl.py) as
# StateMachine.Definition (an object, so cfn-lint validates the ASL too) in a temporary copy
# of the merge template first.
# The zip is then trimmed (stepfunctions/trim_package.py) and imported the way Lambda would
# (stepfunctions/smoke_package.py). Works offline apart from fetching requirements.txt wheels
# from PyPI; never calls AWS.
#
# Two interpreters: PYTHON (the development venv) assembles and tests the template;
# PACKAGE_PYTHON (.venv-package, `make package` makes it with the Lambda runtime's Python)
# runs Chalice, which takes the functions' runtime from the interpreter it runs on, builds
# the tilefan wheel and runs the smoke import, which loads the zip's compiled extensions.
set -euo pipefail

cd "$(dirname "$0")/.."

STAGE="${STAGE:-dev}"
OUT="${OUT:-dist}"
PYTHON="${PYTHON:-.venv/bin/python}"
PACKAGE_PYTHON="${PACKAGE_PYTHON:-.venv-package/bin/python}"
CHALICE="${CHALICE:-$(dirname "$PACKAGE_PYTHON")/chalice}"
CFN_LINT="${CFN_LINT:-.venv/bin/cfn-lint}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The deployed definition batches the Distributed Map's items and sets its concurrency from
# the tile function's reserved concurrency (stepfunctions/packaged_asl.py: moto, which the
# tests run the repository's definition on, cannot parse ItemBatcher).
"$PYTHON" stepfunctions/packaged_asl.py stepfunctions/tilefan.asl.json .chalice/config.json "$work/tilefan.asl.json"
"$PYTHON" - stepfunctions/merge-template.json "$work/tilefan.asl.json" "$work/merge-template.json" <<'PY'
import json
import sys

template_path, asl_path, out_path = sys.argv[1:4]
with open(template_path) as f:
    template = json.load(f)
with open(asl_path) as f:
    definition = json.load(f)
template["Resources"]["StateMachine"]["Properties"]["Definition"] = definition
with open(out_path, "w") as f:
    json.dump(template, f, indent=2)
PY
# The CloudWatch dashboard, from stepfunctions/dashboard.json (an Fn::Sub string in the template).
"$PYTHON" stepfunctions/render_dashboard.py "$work/merge-template.json"

rm -rf "$OUT"
# The library itself: Chalice packages app.py, chalicelib/ and requirements.txt, and copies
# vendor/ to the top of the zip, so the tilefan wheel is built and unpacked there first.
mkdir -p "$work/src"
cp -R pyproject.toml README.md tilefan "$work/src/"
# The C atoms kernel, compiled here for the Lambda runtime and the workers (ckernel.py).
bash stepfunctions/build_kernel.sh "$work/src/tilefan/compute/_atoms_kernel.so" >/dev/null
isolation=()  # reuse the venv's setuptools when it has one: no download
if "$PACKAGE_PYTHON" -c "import setuptools" 2>/dev/null; then isolation=(--no-build-isolation); fi
"$PACKAGE_PYTHON" -m pip wheel --quiet --no-deps "${isolation[@]}" --wheel-dir "$work/wheel" "$work/src"
rm -rf vendor
"$PACKAGE_PYTHON" -m pip install --quiet --no-deps --no-compile --target vendor "$work"/wheel/tilefan-*.whl
trap 'rm -rf "$work" vendor' EXIT
"$CHALICE" package --stage "$STAGE" --merge-template "$work/merge-template.json" "$OUT"
# Drop what never runs in Lambda (the runtime's own boto3/botocore, NumPy's tests, stubs,
# unused Swagger UI builds): see stepfunctions/trim_package.py.
"$PYTHON" stepfunctions/trim_package.py "$OUT/deployment.zip"
# The functions import tilefan and its compiled dependencies: refuse a zip without them, with
# what trimming drops, or over Chalice's 50 MB / Lambda's 250 MB unzipped limits; and every
# function runs on the packaging Python's runtime.
runtime="$("$PACKAGE_PYTHON" -c 'import sys; print(f"python{sys.version_info[0]}.{sys.version_info[1]}")')"
"$PYTHON" - "$OUT/deployment.zip" "$OUT/sam.json" "$runtime" <<'PY'
import json
import sys
import zipfile

with open(sys.argv[2]) as f:
    resources = json.load(f)["Resources"]
runtimes = {r["Properties"]["Runtime"] for r in resources.values() if r["Type"] == "AWS::Serverless::Function"}
assert runtimes == {sys.argv[3]}, f"the functions run on {sorted(runtimes)}, not {sys.argv[3]}"

with zipfile.ZipFile(sys.argv[1]) as z:
    names = set(z.namelist())
    unzipped = sum(i.file_size for i in z.infolist())
zipped = __import__("os").path.getsize(sys.argv[1])
for needed in ("app.py", "chalicelib/lambdas.py", "tilefan/pipeline/tile.py", "tilefan/compute/_atoms_kernel.so"):
    assert needed in names, f"{needed} is missing from the deployment package"
for prefix in ("numpy/_core/_multiarray_umath", "pydantic_core/_pydantic_core"):
    assert any(n.startswith(prefix) and n.endswith(".so") for n in names), f"no {prefix} extension"
for gone in ("botocore/", "boto3/", "numpy/_core/tests/"):
    assert not any(n.startswith(gone) for n in names), f"{gone} should have been trimmed"
assert zipped < 50 * 2**20 and unzipped < 250 * 2**20, (zipped, unzipped)
print(f"deployment.zip: {zipped / 2**20:.1f} MiB zipped, {unzipped / 2**20:.1f} MiB unzipped, for {sys.argv[3]}")
PY
# ... and it must still import, with only the runtime's boto3 family beside it.
"$PACKAGE_PYTHON" stepfunctions/smoke_package.py "$OUT/deployment.zip"
# The alarms and the dashboard name real resources of the template that is deployed.
TILEFAN_SAM_JSON="$OUT/sam.json" "$PYTHON" -m pytest -q -p no:cacheprovider --no-header \
    tests/unit/test_observability.py tests/unit/test_execution_end_rule.py
# Informational checks too (I3011: stateful resources must say what happens on delete).
"$CFN_LINT" --include-checks I -- "$OUT/sam.json"
# The spot workers' package (docs/spot.md): wheelhouse.sh (make wheelhouse) adds the locked
# dependencies, and $OUT/worker/ goes to s3://<JobsBucket>/worker/ after deploying.
# Built from a copy so that setuptools leaves no build/ in the checkout.
mkdir -p "$OUT/worker"
cp "$work"/wheel/tilefan-*.whl "$OUT/worker/"
echo "packaged stage $STAGE: $OUT/sam.json, $OUT/deployment.zip (cfn-lint clean) and $OUT/worker/*.whl (make wheelhouse adds its dependencies)"
