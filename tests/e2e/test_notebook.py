"""The Python API's progress in a real Jupyter kernel (nbclient + ipykernel).

A notebook calls ``tilefan.matmul(..., progress=True)``: with ipywidgets the bar is a
widget that ends full, and without it a text bar with no "IProgress not found" warning;
neither run leaves a traceback. The kernel is this test's Python with this checkout on
its path.
"""

from __future__ import annotations

import json
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

MATMUL = (
    "import numpy as np, tilefan\n"
    "rng = np.random.default_rng(0)\n"
    "a, b = rng.random((300, 200)), rng.random((200, 100))\n"
    "c = tilefan.matmul(a, b, tile=100, workers=2, progress=True, verify=True)\n"
    "print('right answer:', bool(np.allclose(c, a @ b)))\n"
)
# The same call in a kernel where ipywidgets cannot be imported.
WITHOUT_WIDGETS = "import sys\nsys.modules['ipywidgets'] = None\n" + MATMUL
WIDGET = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def notebook() -> Any:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(MATMUL), nbformat.v4.new_code_cell(WITHOUT_WIDGETS)]
    # Bounded: a kernel that hangs fails the test instead of the suite.
    NotebookClient(nb, timeout=120, startup_timeout=60, kernel_name="python3").execute()
    return nb


def _text(outputs: list[Any], name: str) -> str:
    return "".join(o["text"] for o in outputs if o["output_type"] == "stream" and o["name"] == name)


def test_progress_is_a_widget_that_ends_full(notebook: Any) -> None:
    outputs = notebook.cells[0].outputs
    assert not [o for o in outputs if o["output_type"] == "error"]
    assert "right answer: True" in _text(outputs, "stdout")
    widgets = [o["data"][WIDGET]["model_id"] for o in outputs if o["output_type"] == "display_data"
               and WIDGET in o["data"]]
    assert len(widgets) == 1, json.dumps(outputs)[:2000]
    assert "Traceback" not in _text(outputs, "stderr") and "Warning" not in _text(outputs, "stderr")
    # The kernel's widget state, saved in the notebook: the bar's progress model ends at its maximum.
    state = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    bars = [m["state"] for m in state.values() if m["model_name"] in ("FloatProgressModel", "IntProgressModel")]
    assert bars and all(b["value"] == b["max"] == 300 * 100 for b in bars)


def test_without_ipywidgets_progress_is_a_text_bar_without_a_warning(notebook: Any) -> None:
    outputs = notebook.cells[1].outputs
    assert not [o for o in outputs if o["output_type"] == "error"]
    assert "right answer: True" in _text(outputs, "stdout")
    err = _text(outputs, "stderr")
    assert "matmul: 100%" in err and "3/3 tiles" in err
    assert "IProgress" not in err and "Warning" not in err
    assert not [o for o in outputs if o["output_type"] == "display_data"]
