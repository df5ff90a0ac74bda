"""The OpenAPI 3.1 description served at ``GET /openapi.json``, generated from the models.

Request bodies come from the same pydantic models that validate them at the door
(``tilefan.domain.spec.request_models``), responses from ``tilefan.service.response_models``; only the routes,
their parameters and their status codes are written here. OpenAPI 3.1 schemas are JSON
Schema 2020-12, which is what pydantic emits.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from tilefan.adapters.records_codec import CURSOR_PATTERN  # what every job store's list_jobs takes
from tilefan.domain.spec.request_models import JobRequest
from tilefan.entrypoints.http.openapi_submit import add_submit_schemas
from tilefan.service.jobs import MAX_PAGE  # what JobService.list enforces
from tilefan.service.response_models import (
    Error,
    Job,
    JobPage,
    Report,
    UploadComplete,
    UploadRequest,
    UploadStored,
    UploadTarget,
)

REF_TEMPLATE = "#/components/schemas/{model}"
# Every model a route names; the schemas they refer to come along.
_COMPONENTS: tuple[type[BaseModel], ...] = (
    JobRequest, Job, JobPage, Report, UploadRequest, UploadTarget, UploadStored, UploadComplete, Error,
)
_ERRORS = {400: "invalid input, or a malformed request", 401: (
               "no or a wrong token (tilefan serve off loopback); no authenticated identity (AWS)"),
           403: "not allowed (Host, or IAM)",
           404: "unknown job, upload or output", 405: "method not allowed",
           408: "the request did not arrive within its deadline (tilefan serve)",
           409: "not in a state that allows this", 410: "upload ID expired",
           413: "request body too large", 415: "unsupported content type",
           429: "too many requests (AWS: API Gateway's throttling)",
           431: "request headers too large (tilefan serve)", 500: "the backend failed",
           501: "needs an optional extra, or a transfer encoding tilefan serve does not take",
           503: "the job store is busy or unavailable: nothing was done; retry after Retry-After"}
# What any operation may answer before (or whatever) its route does: the HTTP front end
# refuses a malformed request (400), a late one (408), a body over its cap (413),
# oversized headers (431) or an unknown transfer encoding (501); Chalice a body type the
# route does not take (415, on every route); the access check a request without the token
# (401) or for another Host (403); API Gateway an unsigned request (403), one without an
# identity (401) or too many at once (429).
FRONT_ERRORS = (400, 401, 403, 408, 413, 415, 429, 431, 500, 501, 503)
# What a schema-valid job may still be refused for: rules JSON Schema cannot state.
_JOB_REFUSED = ("invalid input; or a job over a configured limit (tiles, estimated cost, matrix elements, grid "
                "points, atoms: the message names the limit and its setting), or whose shapes do not chain")
_JOB_CAP = ("the caller already has TILEFAN_MAX_CONCURRENT_JOBS (AWS) or TILEFAN_MAX_QUEUED_JOBS (tilefan serve) "
            "jobs queued or running, or API Gateway's throttling")
_SECURITY_SCHEMES = {
    "sigv4": {"type": "apiKey", "name": "Authorization", "in": "header",
              "description": "AWS: a SigV4-signed request (API Gateway's IAM authorizer); the default"},
    "cognito": {"type": "apiKey", "name": "Authorization", "in": "header",
                "description": "AWS, on stages packaged with a Cognito user pool: the user's ID token"},
    "serverToken": {"type": "http", "scheme": "bearer",
                    "description": "tilefan serve bound off loopback: the token it prints at start"},
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF_TEMPLATE.format(model=model.__name__)}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _busy(description: str) -> dict[str, Any]:
    """A 429 or 503: the error, and (from tilefan's own routes) how many seconds to wait before retrying."""
    retry = {"description": "seconds to wait before retrying", "schema": {"type": "integer", "minimum": 0}}
    return {**_json(Error, description), "headers": {"Retry-After": retry}}


def _answers(status: int, model: type[BaseModel], description: str, *errors: int) -> dict[str, Any]:
    """An operation's responses: its success, the listed errors, and 500."""
    return {str(status): _json(model, description), **_errors(*errors)}


def _errors(*errors: int) -> dict[str, Any]:
    """The listed errors and the front end's, in the error shape, by status."""
    return {str(code): _busy(_ERRORS[code]) if code in (429, 503) else _json(Error, _ERRORS[code])
            for code in sorted({*errors, *FRONT_ERRORS})}


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _body(model: type[BaseModel] | str) -> dict[str, Any]:
    ref = {"$ref": REF_TEMPLATE.format(model=model)} if isinstance(model, str) else _ref(model)
    return {"required": True, "content": {"application/json": {"schema": ref}}}


def _download(what: str) -> dict[str, Any]:
    return {"get": {
        "summary": f"Download the job's {what} (.npy): the bytes locally, a redirect to a presigned URL on AWS",
        "parameters": [_path_param("job_id")],
        "responses": {
            "200": {"description": "the .npy file", "content": {"application/octet-stream": {
                "schema": {"type": "string", "contentMediaType": "application/octet-stream"}}}},
            "307": {"description": "a presigned URL to GET the file from", "headers": {
                "Location": {"schema": {"type": "string"}}}},
            **_errors(404),
        },
    }}


def _field_download() -> dict[str, Any]:
    """The field's download, which also converts it to a map viewers open (``format``)."""
    route = _download("field")
    get = route["get"]
    get["summary"] += "; with format=dx or mrc, a map (origin and spacing in it), converted on the server"
    get["parameters"] = [*get["parameters"], {
        "name": "format", "in": "query", "required": False,
        "description": "npy (default), dx (OpenDX text, up to 128³ points) or mrc (CCP4/MRC float32; ccp4 too)",
        "schema": {"type": "string", "enum": ["npy", "dx", "mrc", "ccp4"]}}]
    get["responses"].update(_errors(400, 404, 413))
    return route


def _paths() -> dict[str, Any]:
    job_id = _path_param("job_id")
    return {
        "/jobs": {
            "post": {
                "summary": "Submit a job",
                "requestBody": _body("SubmitJob"),
                "responses": {**_answers(202, Job, "accepted", 400, 413, 415), "400": _json(Error, _JOB_REFUSED),
                              "429": _busy(_JOB_CAP)},
            },
            "get": {
                "summary": "The caller's recent jobs, newest first",
                "parameters": [
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE,
                                                                "default": 20}},
                    {"name": "cursor", "in": "query", "schema": {
                        "type": "string", "pattern": CURSOR_PATTERN,
                        "description": "next_cursor from the previous page (empty or absent: the first page)"}},
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
        "/jobs/{job_id}/result": _download("result"),
        "/jobs/{job_id}/field": _field_download(),
        "/uploads": {
            "post": {
                "summary": "Get an upload ID, and where to send the file",
                "requestBody": _body(UploadRequest),
                "responses": _answers(201, UploadTarget, "upload target", 400, 413, 415),
            },
        },
        "/uploads/{upload_id}/{name}": {
            "put": {
                "summary": "Embedded backend: the upload URL POST /uploads hands out (on AWS, S3's)",
                "parameters": [_path_param("upload_id"), _path_param("name")],
                "requestBody": {"required": True, "content": {"application/octet-stream": {
                    "schema": {"type": "string", "contentMediaType": "application/octet-stream"}}}},
                "responses": _answers(201, UploadStored, "stored", 400, 404, 409, 410, 413, 415),
            },
        },
        "/uploads/{upload_id}/complete": {
            "post": {
                "summary": "Check the sent file and record the upload COMPLETE (once; the same answer after)",
                "parameters": [_path_param("upload_id")],
                "responses": _answers(200, UploadComplete, "complete", 400, 404, 409, 410, 413),
            },
        },
        **_web_paths(job_id),
        "/openapi.json": {
            "get": {"summary": "This document", "responses": {"200": {
                "description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}},
                **_errors()}},
        },
    }


def _web_paths(job_id: dict[str, Any]) -> dict[str, Any]:
    """The web page, its assets, the report's files and the heat-map slice (``web.py``)."""

    def get(summary: str, types: tuple[str, ...], *errors: int, params: tuple[str, ...] = ()) -> dict[str, Any]:
        ok = {"description": summary, "content": {t: {"schema": {"type": "string"}} for t in types}}
        out = {"200": ok, **_errors(*errors)}
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
            "responses": {"200": slice_ok, **_errors(404, 409)}}},
        "/jobs/{job_id}/report/{name}": get(
            "The report as a file: logs.csv, error.csv, performance.txt or runtime.png",
            ("text/csv", "text/plain", "image/png"), 404, 501, params=("job_id", "name")),
    }


@functools.cache
def _document() -> dict[str, Any]:
    _, top = models_json_schema([(model, "validation") for model in _COMPONENTS], ref_template=REF_TEMPLATE)
    add_submit_schemas(top["$defs"], REF_TEMPLATE)
    return {
        "openapi": "3.1.0",
        "info": {"title": "tilefan", "version": "0.1.0",
                 "description": "Run big numeric jobs as a tiled fan-out: matmul, add and atoms."},
        "paths": _paths(),
        "components": {"schemas": top["$defs"], "securitySchemes": _SECURITY_SCHEMES},
        # Any one of these: SigV4 on AWS (or a Cognito token, as the stage chooses); the token
        # of a ``tilefan serve`` bound off loopback; nothing for a loopback server.
        "security": [{"sigv4": []}, {"cognito": []}, {"serverToken": []}, {}],
    }


def openapi_document() -> dict[str, Any]:
    """The document (a fresh copy: callers may change theirs)."""
    return copy.deepcopy(_document())
