"""The REST routes (``/jobs``, ``/uploads``, ``/openapi.json``) as a Chalice blueprint:
thin doors over JobService.

``rest_api`` builds the blueprint from what the composition root hands it: how to get
the service, the authorizer API Gateway puts in front of every route (None under
``tilefan serve``, whose access policy guards it instead) and the access policy. Nothing
here is module state, so two apps (two tests, two servers) never share a service or a
policy. ``rest_app.http_app`` registers it with the web pages; ``app.py`` (AWS) and
``tilefan serve`` call that. Every route acts for the caller (``caller_of``): it sees and
creates only that owner's jobs and uploads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalice import Blueprint, Response
from chalice.app import Authorizer

from tilefan.domain.upload_keys import Output
from tilefan.entrypoints.http.access import REFUSE_ALL, AccessPolicy
from tilefan.entrypoints.http.guard import answer, failure, guarded_by, parse_json
from tilefan.entrypoints.http.openapi import openapi_document
from tilefan.entrypoints.http.owner import identity
from tilefan.errors import TilefanError
from tilefan.service.body_caps import json_cap
from tilefan.service.jobs import JobService

# How a door gets the service: built once, lazily, by the composition root's provider.
ServiceProvider = Callable[[], JobService]


def caller_of(service: JobService, blueprint: Blueprint) -> str:
    """The owner the current request acts for (UnauthenticatedError, a 401, if none)."""
    return service.owner_of(identity(blueprint.current_request.context))


def content_length(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def rest_api(service: ServiceProvider, *, authorizer: Authorizer | None = None,
             access: AccessPolicy = REFUSE_ALL) -> Blueprint:
    """The REST routes over ``service``; without an access policy they answer no request."""
    api = Blueprint(__name__)
    # The guard is app-wide once registered: it also stands before the web pages' routes.
    api.middleware("http")(guarded_by(access))

    def caller() -> str:
        return caller_of(service(), api)

    def with_body(fn: Callable[[Any], Any], status: int) -> Response:
        try:
            request = api.current_request
            raw = request.raw_body or b""
            json_cap(service().http_limits.max_body_bytes).check(content_length(request.headers.get("content-length")),
                                                            len(raw))
            body = parse_json(raw)
        except TilefanError as exc:
            return failure(exc)
        return answer(lambda: fn(body), status)

    def download(job_id: str, which: Output) -> Response:
        """A job's output: streamed by the embedded server, a redirect to a presigned GET on AWS."""
        try:
            how, what = service().output(job_id, which, caller())
        except TilefanError as exc:
            return failure(exc)
        if how == "redirect":
            return Response(body="", status_code=307, headers={"Location": str(what)})
        return Response(body=what, status_code=200, headers={
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f'attachment; filename="{job_id}-{which}.npy"'})

    @api.route("/jobs", methods=["POST"], authorizer=authorizer)
    def create_job() -> Response:
        return with_body(lambda body: service().submit(body, caller()), 202)

    @api.route("/jobs", methods=["GET"], authorizer=authorizer)
    def list_jobs() -> Response:
        params: Any = api.current_request.query_params or {}
        return answer(lambda: service().list(params.get("limit"), params.get("cursor"), caller()))

    @api.route("/jobs/{job_id}", methods=["GET"], authorizer=authorizer)
    def get_job(job_id: str) -> Response:
        return answer(lambda: service().get(job_id, caller()))

    @api.route("/jobs/{job_id}", methods=["DELETE"], authorizer=authorizer)
    def cancel_job(job_id: str) -> Response:
        return answer(lambda: service().cancel(job_id, caller()))

    @api.route("/jobs/{job_id}/report", methods=["GET"], authorizer=authorizer)
    def job_report(job_id: str) -> Response:
        return answer(lambda: service().report(job_id, caller()))

    @api.route("/uploads", methods=["POST"], authorizer=authorizer)
    def create_upload() -> Response:
        return with_body(lambda body: service().create_upload(body, caller()), 201)

    @api.route("/uploads/{upload_id}/{name}", methods=["PUT"], authorizer=authorizer,
               content_types=["application/octet-stream"])
    def put_upload(upload_id: str, name: str) -> Response:
        request = api.current_request
        raw = request.raw_body or b""
        data = raw.encode() if isinstance(raw, str) else raw
        declared = content_length(request.headers.get("content-length"))
        return answer(lambda: service().receive_upload(upload_id, name, data, caller(), declared=declared), 201)

    @api.route("/uploads/{upload_id}/complete", methods=["POST"], authorizer=authorizer)
    def complete_upload(upload_id: str) -> Response:
        return answer(lambda: service().complete_upload(upload_id, caller()))

    @api.route("/jobs/{job_id}/result", methods=["GET"], authorizer=authorizer)
    def job_result(job_id: str) -> Response:
        return download(job_id, "result")

    @api.route("/jobs/{job_id}/field", methods=["GET"], authorizer=authorizer)
    def job_field(job_id: str) -> Response:
        """The field as .npy, or with ``?format=dx|mrc`` as a map viewers open (origin and spacing in it)."""
        from tilefan.entrypoints.http.field_download import check_format, map_of

        params: Any = api.current_request.query_params or {}
        try:
            fmt = check_format(params.get("format"))
            if fmt == "npy":
                return download(job_id, "field")
            spec, read, remote = service().field_source(job_id, caller())
            body = map_of(spec, fmt, read, remote)
        except TilefanError as exc:
            return failure(exc)
        return Response(body=body, status_code=200, headers={
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f'attachment; filename="{job_id}-field.{fmt}"'})

    @api.route("/openapi.json", methods=["GET"], authorizer=authorizer)
    def openapi() -> Response:
        return Response(body=openapi_document(), status_code=200, headers={"Content-Type": "application/json"})

    return api
