"""The request body of ``POST /jobs`` as REST callers may send it, derived from the job models.

The job models serve the CLI too, which names its own paths. Over REST, data is named by
ID (``tilefan.service.rest_door``): ``file`` takes an upload's key or a job's output,
``out`` and ``field_out`` are gone, and an atoms job asks for its field with ``field``.
This derives those ``Submit*`` schemas from the generated ones, so the two cannot drift.
"""

from __future__ import annotations

import copy
import json
from typing import Any

# An upload's key (as POST /uploads returns it in use_as) or a previous job's output.
FILE_KEY = (r"^(uploads/[0-9a-f]{16}/[A-Za-z0-9][A-Za-z0-9._-]{0,123}\.([nN][pP][yY]|[cC][sS][vV])"
            r"|jobs/[0-9a-f]{16}/(out|field)\.npy)$")
_RENAMED = {
    "JobRequest": "SubmitJob", "MatmulRequest": "SubmitMatmul", "AddRequest": "SubmitAdd",
    "AtomsRequest": "SubmitAtoms", "StoredMatrixRequest": "SubmitStoredMatrix",
    "StoredAtomsRequest": "SubmitStoredAtoms",
}
_FILE_DOC = "an upload's key (use_as from POST /uploads) or a finished job's output, jobs/<job_id>/out.npy"


def add_submit_schemas(schemas: dict[str, Any], ref_template: str) -> None:
    """Add the ``Submit*`` schemas next to the models' own."""
    text = json.dumps({name: schemas[name] for name in _RENAMED})
    for old, new in _RENAMED.items():
        text = text.replace(json.dumps(ref_template.format(model=old)), json.dumps(ref_template.format(model=new)))
    derived: dict[str, Any] = json.loads(text)
    for old, new in _RENAMED.items():
        schema = copy.deepcopy(derived[old])
        schema["title"] = new
        schema.pop("examples", None)  # the models' examples name files the CLI way
        props = schema.get("properties", {})
        props.pop("out", None)
        props.pop("field_out", None)
        if "file" in props:
            props["file"] = {"type": "string", "pattern": FILE_KEY, "description": _FILE_DOC}
        if old == "AtomsRequest":
            props["field"] = {"type": "boolean", "default": False,
                              "description": "keep the whole field; download it from GET /jobs/{job_id}/field"}
        schemas[new] = schema
