"""The REST routes (``/jobs``, ``/uploads``, ``/openapi.json``) as a Chalice blueprint:
thin doors over JobService.

``app.py`` registers this blueprint for AWS; ``tilefan serve`` registers it on a local
Chalice app over the embedded backend. The service is built lazily on first request,
from configuration, in ``tilefan.bootstrap``. Every route acts for the caller
(``caller``): it sees and creates only that owner's jobs and uploads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalice import Blueprint, Response

from tilefan.bootstrap import api_authorizer
from tilefan.entrypoints.openapi import openapi_document
from tilefan.entrypoints.rest_guard import guard, parse_json, retry_headers
from tilefan.entrypoints.rest_owner import identity
from tilefan.errors import TilefanError, TooLargeError
from tilefan.pipeline.error_codec import http_error
from tilefan.service.jobs import JobService

api = Blueprint(__name__)
api.middleware("http")(guard)
# Every route, on AWS, only for SigV4-signed callers (or a Cognito pool: see api_authorizer).
AUTH = api_authorizer()

_service: JobService | None = None
_factory: Callable[[], JobService] | None = None


def set_service_factory(factory: Callable[[], JobService] | None) -> None:
    """Choose how the service is built (tests and ``tilefan serve`` call this)."""
    global _service, _factory
    _service, _factory = None, factory


def get_service() -> JobService:
    global _service
    if _service is None:
        if _factory is None:
            from tilefan.bootstrap import build_service

            _service = build_service()
        else:
            _service = _factory()
    return _service


def caller() -> str:
    """The owner the current request acts for (UnauthenticatedError, a 401, if none)."""
    return get_service().owner_of(identity(api.current_request.context))


def _error(status: int, body: dict[str, Any]) -> Response:
    return Response(body={"error": body}, status_code=status,
                    headers={"Content-Type": "application/json", **retry_headers(status)})


def _handle(fn: Callable[[], Any], status: int = 200) -> Response:
    """Run a service call and answer our errors with the codec's status and body."""
    try:
        return Response(body=fn(), status_code=status, headers={"Content-Type": "application/json"})
    except TilefanError as exc:
        return _error(*http_error(exc))


def _with_body(fn: Callable[[Any], Any], status: int) -> Response:
    try:
        request = api.current_request
        cap = get_service().limits.max_body_bytes
        if (_content_length(request.headers.get("content-length")) or 0) > cap:
            raise TooLargeError(f"request bodies are capped at {cap} bytes (setting TILEFAN_MAX_BODY_BYTES)")
        body = parse_json(request.raw_body or b"", cap)
    except TilefanError as exc:
        return _error(*http_error(exc))
    return _handle(lambda: fn(body), status)


@api.route("/jobs", methods=["POST"], authorizer=AUTH)
def create_job() -> Response:
    return _with_body(lambda body: get_service().submit(body, caller()), 202)


@api.route("/jobs", methods=["GET"], authorizer=AUTH)
def list_jobs() -> Response:
    params: Any = api.current_request.query_params or {}
    return _handle(lambda: get_service().list(params.get("limit"), params.get("cursor"), caller()))


@api.route("/jobs/{job_id}", methods=["GET"], authorizer=AUTH)
def get_job(job_id: str) -> Response:
    return _handle(lambda: get_service().get(job_id, caller()))


@api.route("/jobs/{job_id}", methods=["DELETE"], authorizer=AUTH)
def cancel_job(job_id: str) -> Response:
    return _handle(lambda: get_service().cancel(job_id, caller()))


@api.route("/jobs/{job_id}/report", methods=["GET"], authorizer=AUTH)
def job_report(job_id: str) -> Response:
    return _handle(lambda: get_service().report(job_id, caller()))


@api.route("/uploads", methods=["POST"], authorizer=AUTH)
def create_upload() -> Response:
    return _with_body(lambda body: get_service().create_upload(body, caller()), 201)


@api.route("/uploads/{upload_id}/{name}", methods=["PUT"], authorizer=AUTH,
           content_types=["application/octet-stream"])
def put_upload(upload_id: str, name: str) -> Response:
    request = api.current_request
    raw = request.raw_body or b""
    data = raw.encode() if isinstance(raw, str) else raw
    declared = _content_length(request.headers.get("content-length"))
    return _handle(lambda: get_service().receive_upload(upload_id, name, data, caller(), declared=declared), 201)


@api.route("/uploads/{upload_id}/complete", methods=["POST"], authorizer=AUTH)
def complete_upload(upload_id: str) -> Response:
    return _handle(lambda: get_service().complete_upload(upload_id, caller()))


def _content_length(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def _download(job_id: str, which: str) -> Response:
    """A job's output: streamed by the embedded server, a redirect to a presigned GET on AWS."""
    try:
        how, what = get_service().output(job_id, which, caller())
    except TilefanError as exc:
        return _error(*http_error(exc))
    if how == "redirect":
        return Response(body="", status_code=307, headers={"Location": str(what)})
    return Response(body=what, status_code=200, headers={
        "Content-Type": "application/octet-stream",
        "Content-Disposition": f'attachment; filename="{job_id}-{which}.npy"'})


@api.route("/jobs/{job_id}/result", methods=["GET"], authorizer=AUTH)
def job_result(job_id: str) -> Response:
    return _download(job_id, "result")


@api.route("/jobs/{job_id}/field", methods=["GET"], authorizer=AUTH)
def job_field(job_id: str) -> Response:
    return _download(job_id, "field")


@api.route("/openapi.json", methods=["GET"], authorizer=AUTH)
def openapi() -> Response:
    return Response(body=openapi_document(), status_code=200, headers={"Content-Type": "application/json"})
