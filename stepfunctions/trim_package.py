"""Trim the Lambda deployment zip that ``chalice package`` built: drop what never runs there.

    python stepfunctions/trim_package.py dist/deployment.zip

Rewrites the zip in place and prints its size before and after. What goes (``dropped``):

- the AWS SDK family (boto3, botocore, s3transfer, jmespath, dateutil, six, urllib3) with
  their ``*.dist-info``: the Lambda Python runtime provides them. botocore reaches the zip
  only as a dependency of aws-xray-sdk (Powertools' ``[tracer]`` extra), and a vendored
  copy would shadow the runtime's boto3's own botocore (``/var/task`` comes first on the
  path), so keeping it also risked a boto3/botocore version mismatch;
- NumPy's test suites (every ``tests`` folder under ``numpy/``);
- type stubs (``*.pyi`` only: ``*.py`` stays) and ``__pycache__``/``*.pyc`` (built for
  another interpreter build, and written again on first import anyway);
- the Swagger UI files ``GET /docs`` never serves: source maps and the ES-module and
  unbundled builds (the page loads ``tilefan.entrypoints.http.web.SWAGGER_FILES`` only).

``stepfunctions/smoke_package.py`` then imports the trimmed package with only the runtime's
SDK beside it, so a rule that drops something needed fails the build.
"""

from __future__ import annotations

import os
import re
import sys
import zipfile
from pathlib import Path

# Top-level names the Lambda Python runtime provides (its /var/runtime) → their distributions.
_RUNTIME_DISTRIBUTIONS = {"boto3": "boto3", "botocore": "botocore", "s3transfer": "s3transfer",
                          "jmespath": "jmespath", "dateutil": "python_dateutil", "six": "six", "urllib3": "urllib3"}
RUNTIME_PROVIDED = tuple(_RUNTIME_DISTRIBUTIONS)
# Their metadata folders (``python_dateutil-2.9.0.post0.dist-info/``, ...).
_RUNTIME_DIST = re.compile(rf"^({'|'.join(_RUNTIME_DISTRIBUTIONS.values())})-[^/]*\.dist-info/")
_SWAGGER_UNUSED = re.compile(r"^swagger_ui_bundle/.*(\.map|/swagger-ui-es-bundle[^/]*\.js|/swagger-ui\.js)$")


def dropped(name: str) -> str | None:
    """Why the zip entry ``name`` is dropped, or None to keep it."""
    parts = name.split("/")
    top = parts[0].removesuffix(".py")
    if top in RUNTIME_PROVIDED or _RUNTIME_DIST.match(name):
        return "provided by the Lambda runtime"
    if parts[0] == "numpy" and "tests" in parts[1:-1]:
        return "NumPy's tests"
    if name.endswith(".pyi"):
        return "type stub"
    if "__pycache__" in parts or name.endswith(".pyc"):
        return "bytecode cache"
    if _SWAGGER_UNUSED.match(name):
        return "Swagger UI file the docs page never loads"
    return None


def trim(path: Path) -> dict[str, int]:
    """Rewrite the zip at ``path`` without the dropped entries; return the bytes each reason freed."""
    freed: dict[str, int] = {}
    tmp = path.with_suffix(".trimming")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            reason = dropped(info.filename)
            if reason is None:
                # Same entry metadata (permissions, dates) and compression as Chalice wrote it.
                out.writestr(info, src.read(info), compress_type=info.compress_type)
            else:
                freed[reason] = freed.get(reason, 0) + info.file_size
    os.replace(tmp, path)
    return freed


def sizes(path: Path) -> tuple[int, int]:
    """(zipped, unzipped) bytes of the zip at ``path``."""
    with zipfile.ZipFile(path) as z:
        return path.stat().st_size, sum(i.file_size for i in z.infolist())


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def main(argv: list[str]) -> None:
    path = Path(argv[1])
    before = sizes(path)
    freed = trim(path)
    after = sizes(path)
    for reason, size in sorted(freed.items(), key=lambda kv: -kv[1]):
        print(f"  trimmed {_mib(size)} unzipped: {reason}")
    print(f"{path.name}: {_mib(before[0])} zipped, {_mib(before[1])} unzipped before trimming; "
          f"{_mib(after[0])} zipped, {_mib(after[1])} unzipped after")


if __name__ == "__main__":
    main(sys.argv)
