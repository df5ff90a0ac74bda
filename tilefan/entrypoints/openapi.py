"""The OpenAPI 3.1 description served at ``GET /openapi.json``, generated from the models.

Request bodies come from the same pydantic models that validate them at the door
(``tilefan.domain.models``), responses from ``tilefan.domain.models_api``; only the routes,
their parameters and their status codes are written here. OpenAPI 3.1 schemas are JSON
Schema 2020-12, which is what pydantic emits.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from tilefan.domain.models import JobRequest
from tilefan.domain.models_api import Error, Job, JobPage, Report, UploadRequest, UploadStored, UploadTarget

REF_TEMPLATE = "#/components/schemas/{model}"
# Every model a route names; the schemas they refer to come along.
_COMPONENTS: tuple[type[BaseModel], ...] = (
    JobRequest, Job, JobPage, Report, UploadRequest, UploadTarget, UploadStored, Error,
)
_ERRORS = {400: "invalid input", 404: "unknown job", 409: "not in a state that allows this",
           413: "request body too large", 500: "the backend failed", 501: "needs an optional extra"}
_MAX_PAGE = 100  # as JobService.list enforces


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF_TEMPLATE.format(model=model.__name__)}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _answers(status: int, model: type[BaseModel], description: str, *errors: int) -> dict[str, Any]:
    """An operation's responses: its success, the listed errors, and 500."""
    out = {str(status): _json(model, description)}
    out.update({str(code): _json(Error, _ERRORS[code]) for code in (*errors, 500)})
    return out


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _body(model: type[BaseModel]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(model)}}}


def _paths() -> dict[str, Any]:
    job_id = _path_param("job_id")
    return {
        "/jobs": {
            "post": {
                "summary": "Submit a job",
                "requestBody": _body(JobRequest),
                "responses": _answers(202, Job, "accepted", 400, 413),
            },
            "get": {
                "summary": "Recent jobs, newest first",
                "parameters": [
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": _MAX_PAGE,
                                                                "default": 20}},
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": _answers(200, JobPage, "a page of jobs", 400),
            },
        },
        "/jobs/{job_id}": {
            "get": {"summary": "Status, progress, ETA, timings and result", "parameters": [job_id],
                    "responses": _answers(200, Job, "the job", 404)},
            "delete": {"summary": "Cancel a queued or running job", "parameters": [job_id],
                       "responses": _answers(200, Job, "cancelled", 404, 409)},
        },
        "/jobs/{job_id}/report": {
            "get": {"summary": "Per-tile timings, routes and workers, with a summary", "parameters": [job_id],
                    "responses": _answers(200, Report, "the report", 404)},
        },
        "/uploads": {
            "post": {
                "summary": "Get a URL to PUT an input file to",
                "requestBody": _body(UploadRequest),
                "responses": _answers(201, UploadTarget, "upload target", 400, 413),
            },
        },
        "/uploads/{upload_id}/{name}": {
            "put": {
                "summary": "Embedded backend: the upload URL POST /uploads hands out (on AWS, S3's)",
                "parameters": [_path_param("upload_id"), _path_param("name")],
                "requestBody": {"required": True, "content": {"application/octet-stream": {
                    "schema": {"type": "string", "contentMediaType": "application/octet-stream"}}}},
                "responses": _answers(201, UploadStored, "stored", 400),
            },
        },
        **_web_paths(job_id),
        "/openapi.json": {
            "get": {"summary": "This document", "responses": {"200": {
                "description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}}},
        },
    }


def _web_paths(job_id: dict[str, Any]) -> dict[str, Any]:
    """The web page, its assets, the report's files and the heat-map slice (``web.py``)."""

    def get(summary: str, types: tuple[str, ...], *errors: int, params: tuple[str, ...] = ()) -> dict[str, Any]:
        ok = {"description": summary, "content": {t: {"schema": {"type": "string"}} for t in types}}
        out = {"200": ok, **{str(code): _json(Error, _ERRORS[code]) for code in (*errors, 500)}}
        return {"get": {"summary": summary, "parameters": [_path_param(p) for p in params], "responses": out}}

    html = ("text/html",)
    slice_ok = {"description": "φ on the grid plane through the minimum",
                "content": {"application/json": {"schema": {"type": "object"}}}}
    return {
        "/": get("The web page: a form for a new job", html),
        "/ui/jobs": get("The web page: recent jobs", html),
        "/ui/jobs/{job_id}": get("The web page: one job, live", html, params=("job_id",)),
        "/static/{name}": get("The web page's script and style", ("text/javascript", "text/css"), 404,
                              params=("name",)),
        "/docs": get("Swagger UI over this document", html, 501),
        "/docs/assets/{name}": get("Swagger UI's files", ("text/javascript", "text/css", "image/png"), 404,
                                   params=("name",)),
        "/jobs/{job_id}/slice": {"get": {
            "summary": "An atoms job's potential on the plane through its minimum (for the heat map)",
            "parameters": [job_id],
            "responses": {"200": slice_ok, **{str(c): _json(Error, _ERRORS[c]) for c in (400, 404, 409, 500)}}}},
        "/jobs/{job_id}/report/{name}": get(
            "The report as a file: logs.csv, error.csv, performance.txt or runtime.png",
            ("text/csv", "text/plain", "image/png"), 404, 501, params=("job_id", "name")),
    }


@functools.cache
def _document() -> dict[str, Any]:
    _, top = models_json_schema([(model, "validation") for model in _COMPONENTS], ref_template=REF_TEMPLATE)
    return {
        "openapi": "3.1.0",
        "info": {"title": "tilefan", "version": "0.1.0",
                 "description": "Run big numeric jobs as a tiled fan-out: matmul, add and atoms."},
        "paths": _paths(),
        "components": {"schemas": top["$defs"]},
    }


def openapi_document() -> dict[str, Any]:
    """The document (a fresh copy: callers may change theirs)."""
    return copy.deepcopy(_document())
