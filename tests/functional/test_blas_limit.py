"""A pool worker's BLAS limit: applied at its first matrix product, never for atoms.

Each case runs in a fresh interpreter, since a BLAS limit holds for a process's life.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

WORKER = textwrap.dedent("""
    import sys
    import numpy as np
    from tilefan.compute import threads
    from tilefan.runtimes.embedded.pool_worker import init_worker

    init_worker(lambda: None, 0)  # a pool worker's setup (the owner pid 0 is never gone)
    assert "threadpoolctl" not in sys.modules, "the worker paid for threadpoolctl before any product"
    assert threads.budget().blas_threads == 1
    {body}
""")


def _run(body: str) -> None:
    code = WORKER.format(body=textwrap.dedent(body).strip())
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_an_atoms_tile_never_loads_threadpoolctl() -> None:
    _run("""
        from tilefan.compute import ckernel
        from tilefan.domain import kernels
        table = np.array([[0.5, 0.5, 0.5, 1.0], [2.5, 1.5, 0.5, -1.0]])
        kernel = ckernel.load() or kernels.atoms_potential
        phi = kernel(table, (0.0, 0.0, 0.0), 1.0, 0.0, ((0, 4), (0, 4), (0, 4)), "float64")
        assert kernels.finite_block_min(phi, ((0, 4), (0, 4), (0, 4)), (4, 4, 4)) is not None
        assert "threadpoolctl" not in sys.modules
    """)


@pytest.mark.parametrize("tiles", [1, 2])
def test_the_first_matrix_tile_holds_blas_to_one_thread(tiles: int, tmp_path: Path) -> None:
    # Real matmul tiles, as the pool worker runs them, through the home's ports.
    _run(f"""
        from pathlib import Path
        from threadpoolctl import threadpool_info
        from tests.helpers import start_job
        from tilefan.bootstrap import embedded_ports
        from tilefan.pipeline.tile import TileOutcome, run_tile
        ports = embedded_ports(Path({str(tmp_path)!r}))
        raw = {{"kind": "matmul", "a": {{"shape": "64x48"}}, "b": {{"shape": "48x40"}}, "tile": 32}}
        job_id, tile_ids = start_job(ports, raw)
        for tile_id in tile_ids[:{tiles}]:
            assert run_tile(ports, job_id, tile_id).outcome is TileOutcome.RECORDED
        blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
        assert blas and all(i["num_threads"] == 1 for i in blas), blas
    """)
