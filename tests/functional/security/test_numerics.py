"""Geometry that overflows the working precision is refused at the door, and verification
never calls an overflowed (all-zero or non-finite) field verified."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import run_job
from tilefan.bootstrap import embedded_ports
from tilefan.domain.spec.parse import Limits, parse_spec
from tilefan.entrypoints.cli import main as cli
from tilefan.errors import InvalidSpecError
from tilefan.pipeline.verify import verify_atoms


def test_the_cli_refuses_a_spacing_that_overflows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TILEFAN_HOME", str(tmp_path / "home"))
    code = cli.main(["run", "atoms", "--grid", "4", "--atoms", "3", "--spacing", "1e300", "--verify"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --spacing: ") and "overflows float64" in err


@pytest.mark.parametrize("body, field", [
    ({"spacing": 1e300}, "spacing"),
    ({"origin": [1e200, 0, 0]}, "spacing"),
    ({"spacing": 1e20, "precision": "float32"}, "spacing"),
    ({"softening": 1e200}, "softening"),
])
def test_the_door_refuses_geometry_that_overflows(body: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidSpecError) as refused:
        parse_spec({"kind": "atoms", "grid": 4, "atoms": 3, **body}, limits=Limits())
    assert refused.value.field == field and "overflow" in refused.value.message


def test_large_but_safe_geometry_is_accepted() -> None:
    spec = parse_spec({"kind": "atoms", "grid": 4, "atoms": 3, "spacing": 1e100}, limits=Limits())
    assert spec.spacing == 1e100  # type: ignore[union-attr]


def test_verification_fails_an_overflowed_field(tmp_path: Path) -> None:
    ports = embedded_ports(tmp_path / "home")
    final = run_job(ports, {"kind": "atoms", "grid": 4, "atoms": 3, "tile": 2, "softening": 0.5, "verify": True})
    assert final.result is not None and final.result["verification"]["passed"] is True
    # The same check on a geometry past the door's limit (as if it had been let through):
    spec = replace(final.spec, spacing=1e300)  # type: ignore[type-var]
    table = np.array([[1e300, 0.0, 0.0, -1.0], [0.0, 2e300, 0.0, 2.0], [0.0, 0.0, 3e300, 1.0]])
    zero_field = {**final.result, "min_value": 0.0, "min_index": [0, 0, 0]}
    check = verify_atoms(ports.blobs, final.job_id, spec, table, zero_field, seed=1)  # type: ignore[arg-type]
    assert check["passed"] is False and "overflowed" in check["degenerate"]
