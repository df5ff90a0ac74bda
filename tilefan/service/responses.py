"""The service's answers, held to the response models the OpenAPI document is made from.

The service builds its answers as plain dicts, which every door sends or prints as they
are. Before an answer leaves, ``documented`` validates it against its model in
``tilefan.service.response_models``, so the shape the document promises is the shape returned:
a drift fails where it is made, not in a generated client. The models forbid unknown
keys, and the answer is exactly what the model dumps (a test holds both to that).

pydantic is imported at the first answer, never at import: ``tilefan run`` builds none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from pydantic import BaseModel

Shape = Literal["job", "job_page", "report", "upload_target", "upload_stored", "upload_complete"]


def documented(shape: Shape, answer: dict[str, Any]) -> dict[str, Any]:
    """``answer``, once its model accepts it (pydantic's ValidationError otherwise: a bug)."""
    from tilefan.service import response_models as m

    models: dict[Shape, type[BaseModel]] = {"job": m.Job, "job_page": m.JobPage, "report": m.Report,
                                            "upload_target": m.UploadTarget, "upload_stored": m.UploadStored,
                                            "upload_complete": m.UploadComplete}
    model = models[shape]
    model.model_validate(answer)
    return answer
