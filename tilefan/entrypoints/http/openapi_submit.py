"""The request body of ``POST /jobs`` as REST callers may send it, derived from the job models.

The job models serve the CLI too, which names its own paths. Over REST, data is named by
ID (``tilefan.service.rest_door``): ``file`` takes an upload's key or a job's output,
``out`` and ``field_out`` are gone, an atoms job asks for its field with ``field``, and
its geometry is given as JSON numbers.
This derives those ``Submit*`` schemas from the generated ones, so the two cannot drift.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from tilefan.domain.upload_keys import INPUT_KEY_PATTERN

_RENAMED = {
    "JobRequest": "SubmitJob", "MatmulRequest": "SubmitMatmul", "AddRequest": "SubmitAdd",
    "AtomsRequest": "SubmitAtoms", "StoredMatrixRequest": "SubmitStoredMatrix",
    "StoredAtomsRequest": "SubmitStoredAtoms", "AroundRequest": "SubmitAround",
}
_FILE_DOC = ("an upload's key (use_as from POST /uploads) or a finished job's output, jobs/<job_id>/out.npy "
             "(or out.zarr, field.npy)")


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
            props["file"] = {"type": "string", "pattern": INPUT_KEY_PATTERN, "description": _FILE_DOC}
        if old == "AroundRequest":
            props["margin"] = {"type": "number", "minimum": 0, "description": props["margin"].get("description", "")}
        if old == "AtomsRequest":
            _numbers_only(props)
            props["field"] = {"type": "boolean", "default": False,
                              "description": "keep the whole field; download it from GET /jobs/{job_id}/field"}
        elif old in ("MatmulRequest", "AddRequest"):
            props["out_format"] = {"type": "string", "enum": ["npy", "zarr"], "default": "npy",
                                   "description": "zarr: the result is a Zarr array whose chunks are the tiles, "
                                                  "written in place with nothing assembled (docs/formats.md)"}
        schemas[new] = schema


def _numbers_only(props: dict[str, Any]) -> None:
    """Geometry as JSON numbers: the text forms ("0.5", "1,2,3") are for the command line,
    and text cannot state a range ("0" and "1e-400" match a number pattern, yet are not > 0)."""
    for name, bound in (("spacing", {"exclusiveMinimum": 0}), ("softening", {"minimum": 0})):
        props[name] = {"type": "number", **bound, "default": props[name].get("default"),
                       "description": props[name].get("description", "")}
    props["origin"] = {"type": "array", "items": {"type": "number"}, "minItems": 3, "maxItems": 3,
                       "default": [0.0, 0.0, 0.0], "description": props["origin"].get("description", "")}
