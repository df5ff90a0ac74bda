"""What stepfunctions/trim_package.py drops from the Lambda zip, and what it must keep.

``make package`` then imports the trimmed zip with only the runtime's SDK beside it
(stepfunctions/smoke_package.py); these cases pin the rules themselves.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from tests.stepfunctions_scripts import load
from tilefan.entrypoints.http.web import SWAGGER_FILES

trim_package = load("trim_package")

SWAGGER = "swagger_ui_bundle/vendor/swagger-ui-5.31.0/"


@pytest.mark.parametrize("name", [
    "botocore/__init__.py",
    "botocore/data/ec2/2016-11-15/service-2.json.gz",
    "botocore-1.44.8.dist-info/RECORD",
    "urllib3/connection.py",
    "python_dateutil-2.9.0.post0.dist-info/METADATA",
    "six.py",
    "jmespath/parser.py",
    "numpy/_core/tests/test_multiarray.py",
    "numpy/random/tests/data/mt19937-testset-1.csv",
    "numpy/__init__.pyi",
    "pydantic/__pycache__/main.cpython-311.pyc",
    SWAGGER + "swagger-ui-bundle.js.map",
    SWAGGER + "swagger-ui-es-bundle-core.js",
    SWAGGER + "swagger-ui.js",
])
def test_what_never_runs_in_lambda_is_dropped(name: str) -> None:
    assert trim_package.dropped(name) is not None


@pytest.mark.parametrize("name", [
    "app.py",
    "chalicelib/lambdas.py",
    "tilefan/compute/_atoms_kernel.so",
    "numpy/__init__.py",
    "numpy/testing/_private/utils.py",  # numpy.testing is a public module, not a test suite
    "numpy/_core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so",
    "numpy.libs/libscipy_openblas64_-56d6093b.so",
    "pydantic_core/_pydantic_core.cpython-311-x86_64-linux-gnu.so",
    "aws_xray_sdk/ext/botocore/patch.py",  # named after botocore, but not botocore
    "aws_lambda_powertools/tracing/tracer.py",
    "wrapt/__init__.py",
    "sixteen.py",
    *(SWAGGER + f for f in SWAGGER_FILES),
])
def test_what_the_functions_import_is_kept(name: str) -> None:
    assert trim_package.dropped(name) is None


def test_trim_rewrites_the_zip_without_the_dropped_entries(tmp_path: Path) -> None:
    path = tmp_path / "deployment.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("app.py", "x = 1\n")
        z.writestr("botocore/__init__.py", "#" * 1000)
        z.writestr("numpy/__init__.pyi", "#" * 10)
    freed = trim_package.trim(path)
    with zipfile.ZipFile(path) as z:
        assert z.namelist() == ["app.py"]
        assert z.read("app.py") == b"x = 1\n"
    assert freed == {"provided by the Lambda runtime": 1000, "type stub": 10}
