"""Live job progress (tqdm) and the final throughput line.

The bar is tqdm's: a text bar on a terminal (rate, ETA, redrawn to the terminal's width),
a widget in a notebook. The widget needs ipywidgets (the ``notebook`` extra); without it a
notebook gets the text bar, not tqdm's warning about it. Notebook support (ipywidgets,
which pulls in IPython and traitlets: ~0.25 s) is imported only inside a running Jupyter
kernel, and a disabled bar (stderr is not a terminal) imports no tqdm at all. It
takes job records as dicts (the REST shape) or ``JobRecord`` objects, so a local run and
a remote job polled over HTTP draw the same bar. Once every tile is in, the job is still
merging (and verifying, when asked): the bar says so instead of sitting silently at 100 %.
"""

from __future__ import annotations

import functools
import io
import math
from typing import Any, TextIO

from tilefan.domain.records import JobRecord

UNIT_NAMES = {"matmul": "elements", "add": "elements", "atoms": "points"}


def human(n: float) -> str:
    """
    >>> human(16777216)
    '16.8M'
    >>> human(999)
    '999'
    """
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= factor:
            return f"{n / factor:.1f}{suffix}"
    return f"{n:.0f}"


def _columns(file: TextIO | None) -> int:
    """The terminal's width in columns, 0 when it cannot say."""
    import os
    import sys

    stream = file if file is not None else sys.stderr
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return 0


def _in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (which has always imported IPython first)."""
    import sys

    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in shell.config


@functools.cache
def _text_bar() -> Any:
    """tqdm's text bar, for one process: a thread lock where tqdm would also make a
    multiprocessing one (importing multiprocessing), and no monitor thread to start, since
    the bar is fed from a steady poll of the job's record."""
    import threading

    from tqdm.std import tqdm

    class TextBar(tqdm):
        monitor_interval = 0

    TextBar.set_lock(threading.RLock())
    return TextBar


def _bar_class() -> Any:
    """tqdm's notebook bar (a widget) inside a notebook with ipywidgets, else the text bar.

    Without ipywidgets, tqdm's notebook bar warns "IProgress not found" and falls back to
    the text bar anyway; asking first keeps the warning out of the output.
    """
    text_bar = _text_bar()
    if not _in_notebook():
        return text_bar
    try:
        import ipywidgets  # noqa: F401  (only whether it imports)
    except ImportError:
        return text_bar
    from tqdm.notebook import tqdm as notebook_bar

    return notebook_bar


def _widget_total(bar: Any, total: int) -> None:
    """Give a notebook bar's widget the total learnt after it was drawn.

    tqdm.notebook sizes its progress widget once, when created: made without a total it
    is a full "info" bar of maximum 1, which would clamp every value to 1 (full from the
    start). Its ``reset(total)`` would fix the widget but also zero the count and the clock.
    """
    container = getattr(bar, "container", None)
    if container is None:  # a text bar
        return
    _, widget, _ = container.children
    widget.max = total
    widget.bar_style = ""
    widget.layout.width = None  # the unknown-total layout no longer applies


def _doc(record: JobRecord | dict[str, Any]) -> dict[str, Any]:
    return record.to_dict() if isinstance(record, JobRecord) else record


class JobProgress:
    """A tqdm bar fed with job records; ``disable=True`` makes every call a no-op."""

    def __init__(self, kind: str, *, file: TextIO | None = None, disable: bool = False) -> None:
        self.kind = kind
        self.disable = disable
        self._phase = ""
        if disable:
            return
        tqdm = _bar_class()
        # Follow the terminal's width as it changes; a terminal that reports no width at all
        # (a bare pty) gets 80 columns rather than an empty bar.
        width = _columns(file)
        self._bar = tqdm(
            total=None, desc=kind, unit=UNIT_NAMES.get(kind, "units")[:-1] or "unit", unit_scale=True,
            dynamic_ncols=width > 0, ncols=None if width > 0 else 80, nrows=None if width > 0 else 24, file=file,
            leave=True,
            mininterval=0.1,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}, {rate_fmt}{postfix}]",
        )

    def update(self, record: JobRecord | dict[str, Any]) -> None:
        if self.disable:
            return
        doc = _doc(record)
        prog = doc["progress"]
        if prog["units_total"] and self._bar.total != prog["units_total"]:
            self._bar.total = prog["units_total"]
            _widget_total(self._bar, prog["units_total"])
            self._bar.refresh()
        step = prog["units_done"] - self._bar.n
        if step > 0:
            self._bar.update(step)
        phase = self._phase_of(doc)
        if phase != self._phase:
            self._phase = phase
            self._bar.set_description_str(f"{self.kind} {phase}".strip(), refresh=False)
        self._bar.set_postfix_str(f"{prog['tiles_done']}/{prog['tiles_total']} tiles", refresh=True)

    @staticmethod
    def _phase_of(doc: dict[str, Any]) -> str:
        """'' while tiles run; 'verifying' or 'merging' once they are all in; the end status."""
        status = doc["status"]
        if status in ("FAILED", "CANCELLED"):
            return status.lower()
        prog = doc["progress"]
        if status == "RUNNING" and prog["tiles_total"] and prog["tiles_done"] >= prog["tiles_total"]:
            return "verifying" if (doc.get("spec") or {}).get("verify") else "merging"
        return ""

    def close(self) -> None:
        if not self.disable:
            self._bar.close()

    def __enter__(self) -> JobProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def work_of(doc: dict[str, Any]) -> tuple[float, str] | None:
    """The job's arithmetic and its unit: flops for matrices, atom-point pairs for atoms.

    >>> work_of({"kind": "matmul", "spec": {"a": {"shape": [300, 200]}, "b": {"shape": [200, 100]}}})
    (12000000.0, 'FLOP')
    >>> work_of({"kind": "atoms", "spec": {"grid": [8, 8, 8], "atoms": {"count": 10}}})
    (5120.0, 'pairs')
    """
    spec = doc.get("spec") or {}
    try:
        if doc["kind"] == "matmul":
            (m, k), (_, n) = spec["a"]["shape"], spec["b"]["shape"]
            return 2.0 * m * k * n, "FLOP"
        if doc["kind"] == "add":
            return float(math.prod(spec["a"]["shape"])), "FLOP"
        if doc["kind"] == "atoms":
            return float(math.prod(spec["grid"]) * spec["atoms"]["count"]), "pairs"
    except (KeyError, TypeError, ValueError):
        return None
    return None


def throughput_line(doc: dict[str, Any], tile_seconds: float | None) -> str | None:
    """Throughput over the wall time and the speedup over running the tiles one after another.

    >>> doc = {"kind": "matmul", "timings": {"wall_s": 0.5},
    ...        "spec": {"a": {"shape": [1000, 1000]}, "b": {"shape": [1000, 1000]}}}
    >>> throughput_line(doc, 0.9)
    '  throughput: 4 GFLOP/s; speedup 1.8x (0.90 s of tile time in 0.50 s wall)'
    """
    wall = (doc.get("timings") or {}).get("wall_s")
    work = work_of(doc)
    if not wall or work is None:
        return None
    amount, unit = work
    per_s = "GFLOP/s" if unit == "FLOP" else f"G {unit}/s"
    line = f"  throughput: {amount / wall / 1e9:.3g} {per_s}"
    if tile_seconds:
        line += f"; speedup {tile_seconds / wall:.1f}x ({tile_seconds:.2f} s of tile time in {wall:.2f} s wall)"
    return line
