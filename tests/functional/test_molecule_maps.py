"""Real molecules in, maps out: our PQR reader against MDAnalysis' on the files
MDAnalysisTests ships, maps read back by GridDataFormats, and the Python API end to end."""

from __future__ import annotations

import os
from pathlib import Path

import gridData
import MDAnalysis as mda
import numpy as np
import pytest
from MDAnalysisTests import datafiles

import tilefan
from tests.molecule_maps import MARGIN, SPACING, adk_path, assert_adk_map
from tilefan.adapters.maps import DX_MAX_POINTS, write_map
from tilefan.domain.molecules import parse_pqr
from tilefan.errors import InvalidSpecError


@pytest.mark.parametrize("name", ["PQR", "PQR_icodes"])
def test_our_pqr_reader_agrees_with_mdanalysis(name: str) -> None:
    path = getattr(datafiles, name)
    table = parse_pqr(Path(path).read_text())
    atoms = mda.Universe(path).atoms
    assert table.shape == (len(atoms), 4)
    # MDAnalysis keeps positions and charges in float32.
    np.testing.assert_allclose(table[:, :3], atoms.positions, rtol=0, atol=4e-6)
    np.testing.assert_allclose(table[:, 3], atoms.charges, rtol=1e-6, atol=1e-7)


def test_adk_open_has_3341_atoms_and_a_charge_of_minus_four() -> None:
    table = parse_pqr(adk_path().read_text())
    assert table.shape == (3341, 4)
    assert table[:, 3].sum() == pytest.approx(-4.0, abs=1e-9)


@pytest.mark.parametrize("suffix", [".dx", ".mrc", ".ccp4"])
def test_maps_carry_origin_spacing_and_values_for_any_grid_shape(tmp_path: Path, suffix: str) -> None:
    field = np.random.default_rng(3).standard_normal((7, 5, 11)) * 1e3
    path = write_map(tmp_path / f"phi{suffix}", field, (-3.5, 1.25, 12.0), 0.4)
    g = gridData.Grid(str(path))
    assert g.grid.shape == (7, 5, 11)
    np.testing.assert_allclose(g.origin, (-3.5, 1.25, 12.0), rtol=1e-7)
    np.testing.assert_allclose(g.delta, (0.4, 0.4, 0.4), rtol=1e-7)
    # MRC stores float32; DX 9 significant digits (a float32 round-trips).
    np.testing.assert_allclose(g.grid, field, rtol=6e-8, atol=0)
    assert os.listdir(tmp_path) == [f"phi{suffix}"]


def test_a_dx_map_over_128_cubed_is_refused_suggesting_mrc_and_nothing_is_written(tmp_path: Path) -> None:
    field = np.lib.stride_tricks.as_strided(np.zeros(1), shape=(129, 128, 128), strides=(0, 0, 0))
    assert field.size > DX_MAX_POINTS
    with pytest.raises(InvalidSpecError) as info:
        write_map(tmp_path / "big.dx", field, (0, 0, 0), 1.0)
    assert info.value.field == "field_out"
    assert "write .mrc instead" in info.value.message
    assert os.listdir(tmp_path) == []


def test_a_map_that_fails_midway_leaves_nothing(tmp_path: Path) -> None:
    class Breaks(np.ndarray):
        def __getitem__(self, key: object) -> np.ndarray:
            raise OSError("disk gone")

    field = np.zeros((4, 4, 4)).view(Breaks)
    for name in ("phi.dx", "phi.mrc"):
        with pytest.raises(OSError):
            write_map(tmp_path / name, field, (0, 0, 0), 1.0)
    assert os.listdir(tmp_path) == []


def test_the_python_api_places_the_grid_around_adk_and_writes_the_map_in_kcal(tmp_path: Path) -> None:
    out = tmp_path / "adk.mrc"
    r = tilefan.atoms(atoms=adk_path(), around=True, margin=MARGIN, spacing=SPACING, units="kcal/mol/e",
                      field_out=out, home=tmp_path / "home", workers=2)
    assert r.record["result"]["field"] == str(out)
    assert r.record["spec"]["units"] == "kcal/mol/e"
    assert_adk_map(out, r.record["result"], units_factor=332.0637)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adk.mrc", "home"]


def test_without_the_formats_extra_an_mrc_map_is_refused_with_the_one_line_hint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "mrcfile", None)  # as if it were not installed
    with pytest.raises(InvalidSpecError) as info:
        write_map(tmp_path / "phi.mrc", np.zeros((2, 2, 2)), (0, 0, 0), 1.0)
    assert str(info.value) == "field_out: MRC maps need the formats extra: pip install 'tilefan[formats]'"
    assert os.listdir(tmp_path) == []
    write_map(tmp_path / "phi.dx", np.zeros((2, 2, 2)), (0, 0, 0), 1.0)  # DX needs nothing extra
