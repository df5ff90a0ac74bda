"""Import the deployment zip the way Lambda would: the zip's own files plus the runtime's AWS SDK.

    python stepfunctions/smoke_package.py dist/deployment.zip

Unzips into a temporary folder (Lambda's ``/var/task``) and links this interpreter's boto3
family into another (the runtime's ``/var/runtime``: ``trim_package.RUNTIME_PROVIDED``).
A child interpreter started with ``-I -S`` (no site-packages, no user site, no
environment paths) and only those two folders on its path then imports ``app`` and
``chalicelib.lambdas`` and every AWS adapter, multiplies with NumPy, builds a pydantic
model, loads the compiled atoms kernel, and checks that every module it loaded came from
the zip, the SDK folder or the standard library. It needs the same Python minor version
as the functions' runtime to load the zip's compiled extensions: package.sh runs it with the
packaging venv's Python, which Chalice took the runtime from.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from trim_package import RUNTIME_PROVIDED  # a sibling script: Python puts its folder on the path

CHILD = r"""
import pkgutil, sys, sysconfig
task, runtime = sys.argv[1:3]
sys.path[:0] = [task, runtime]
import app, chalicelib.lambdas
assert not chalicelib.lambdas.tracer.disabled, "tracing is off: the X-Ray patching went untested"
import tilefan.adapters.aws as aws
for mod in pkgutil.iter_modules(aws.__path__, "tilefan.adapters.aws."):
    __import__(mod.name)
import numpy as np
assert float((np.ones((64, 32)) @ np.ones((32, 16))).sum()) == 64 * 32 * 16
from tilefan.compute import ckernel
assert ckernel.load() is not None, "the compiled atoms kernel does not load"
from tilefan.entrypoints.http import web
import swagger_ui_bundle, pathlib
missing = [f for f in web.SWAGGER_FILES if not (pathlib.Path(swagger_ui_bundle.swagger_ui_path) / f).is_file()]
assert not missing, missing
import botocore, boto3
boto3.client("s3", region_name="us-east-1")
stdlib = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib")}
roots = (task, runtime, *stdlib)
strays = sorted(name for name, m in list(sys.modules.items())
                if getattr(m, "__file__", None) and not str(m.__file__).startswith(roots))
assert not strays, f"imported from outside the package: {strays}"
print(f"{len(sys.modules)} modules imported from the package and the runtime's SDK")
"""


def runtime_sdk(into: Path) -> None:
    """Link this interpreter's copies of what the Lambda runtime provides into ``into``."""
    into.mkdir()
    for name in RUNTIME_PROVIDED:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise SystemExit(f"smoke_package: {name} is not installed here (it stands in for the runtime's)")
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (into / source.name).symlink_to(source)


def main(argv: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        task, runtime = Path(tmp, "task"), Path(tmp, "runtime")
        with zipfile.ZipFile(argv[1]) as z:
            z.extractall(task)
        runtime_sdk(runtime)
        # As in Lambda: LAMBDA_TASK_ROOT turns Powertools' Tracer on, which patches botocore
        # through aws-xray-sdk (so the runtime's botocore must suit the zip's X-Ray SDK).
        env = {"AWS_DEFAULT_REGION": "us-east-1", "LAMBDA_TASK_ROOT": str(task),
               "AWS_LAMBDA_FUNCTION_NAME": "tilefan-smoke", "PATH": "/usr/bin:/bin"}
        # cwd is an empty folder so that nothing from the checkout can be imported.
        empty = Path(tmp, "cwd")
        empty.mkdir()
        child = subprocess.run([sys.executable, "-I", "-S", "-c", CHILD, str(task), str(runtime)],
                               check=False, cwd=empty, env=env)
        if child.returncode:
            raise SystemExit(f"smoke_package: {argv[1]} does not import with the runtime's SDK (see above)")


if __name__ == "__main__":
    main(sys.argv)
