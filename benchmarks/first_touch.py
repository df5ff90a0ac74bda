"""What touching fresh memory costs, against how long ago memory was freed.

On a virtual machine whose balloon driver reports free memory back to the host
(virtio-balloon free page reporting), the kernel waits about two seconds after memory is
freed, then hands its large free blocks back; touching them again costs host faults. Memory
freed just now is still the guest's and cheap. Large blocks are what NumPy's big arrays
(transparent huge pages) and a file's page cache (large folios) are made of, so this
decides which of two back-to-back runs pays for its memory, and ``matmul_e2e.py`` waits
before each run (``--settle``).

Each row frees 512 MiB, waits, then takes 512 MiB again and writes it, best of
``--repeat``, three ways: a NumPy array (one write a page), pages of a file written with
``pwrite`` (the page cache of an output), and 4 KiB anonymous pages (``MAP_PRIVATE``, no
huge pages). Usage:

    .venv/bin/python benchmarks/first_touch.py [--waits 0 1 2 3 6] [--repeat 2]
"""

from __future__ import annotations

import argparse
import mmap
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

MIB = 1 << 20
SIZE = 512 * MIB


def _numpy_array(_: Path) -> float:
    start = time.perf_counter()
    array = np.empty(SIZE // 8)
    array[:: mmap.PAGESIZE // 8] = 1.0
    seconds = time.perf_counter() - start
    del array  # freed: these pages start the next wait
    return seconds


def _page_cache(folder: Path) -> float:
    chunk = b"\x01" * (32 * MIB)
    path = folder / "touch.bin"
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    start = time.perf_counter()
    for offset in range(0, SIZE, len(chunk)):
        os.pwrite(fd, chunk, offset)
    seconds = time.perf_counter() - start
    os.close(fd)
    path.unlink()  # its cached pages are freed here
    return seconds


def _small_pages(_: Path) -> float:
    start = time.perf_counter()
    region = mmap.mmap(-1, SIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    np.frombuffer(region, dtype=np.float64)[:: mmap.PAGESIZE // 8] = 1.0
    seconds = time.perf_counter() - start
    region.close()
    return seconds


WAYS: dict[str, Callable[[Path], float]] = {
    "NumPy array": _numpy_array, "page cache": _page_cache, "4 KiB pages": _small_pages,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waits", type=float, nargs="*", default=[0, 1, 2, 3, 6])
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    balloon = Path("/sys/bus/virtio/drivers/virtio_balloon").exists()
    print(f"virtio_balloon driver: {'present' if balloon else 'absent'}; 512 MiB taken after 512 MiB freed, "
          f"best of {args.repeat}, ms per MiB")
    with tempfile.TemporaryDirectory() as folder:
        for name, way in WAYS.items():
            cells = []
            for wait in args.waits:
                best = float("inf")
                for _ in range(args.repeat):
                    way(Path(folder))  # takes and frees 512 MiB
                    time.sleep(wait)
                    best = min(best, way(Path(folder)))
                cells.append(f"{wait:g} s: {1e3 * best / 512:5.2f}")
            print(f"  {name:12s} freed " + ", ".join(cells))


if __name__ == "__main__":
    main()
