"""The web page and the report files, as a Chalice blueprint next to the REST routes.

``GET /`` is the job form, ``/ui/jobs`` the job list, ``/ui/jobs/{id}`` a job's live page
(progress, ETA, a Gantt chart growing as tiles finish, then the result), ``/docs`` Swagger
UI over ``/openapi.json``. Every asset is served from this package (and Swagger UI's from
the ``swagger-ui-bundle-v2`` package): no CDN, no build step. The report's files come from
``/jobs/{id}/report/{logs.csv,error.csv,performance.txt,runtime.png}`` and an atoms job's
heat-map slice from ``/jobs/{id}/slice``.

``web_pages`` builds the blueprint from the service provider and authorizer the
composition root hands the REST routes (``rest_app.http_app`` registers both); the REST
blueprint's guard, app-wide, applies the access policy before these routes too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chalice import Blueprint, Response
from chalice.app import Authorizer

from tilefan.entrypoints.http.guard import answer, error_response, failure
from tilefan.entrypoints.http.rest import ServiceProvider, caller_of
from tilefan.errors import TilefanError

STATIC = Path(__file__).with_name("static")
TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".js": "text/javascript; charset=utf-8", ".png": "image/png", ".csv": "text/csv; charset=utf-8",
         ".txt": "text/plain; charset=utf-8"}
# Every page's head and navigation bar; a page's file in static/ holds the rest of its body.
PAGE_TOP = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tilefan: {title}</title>
<link rel="stylesheet" href="/static/style.css"></head>
<body>
<header><strong>tilefan</strong><a href="/">new job</a><a href="/ui/jobs">jobs</a><a href="/docs">API</a></header>
"""
SWAGGER_FILES = ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "favicon-32x32.png")
SWAGGER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tilefan API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui"});</script>
</body></html>"""


def _file(path: Path) -> Response:
    body: Any = path.read_bytes() if path.suffix == ".png" else path.read_text()
    return Response(body=body, status_code=200, headers={"Content-Type": TYPES.get(path.suffix, "text/plain")})


def _page(name: str, title: str) -> Response:
    body = PAGE_TOP.format(title=title) + (STATIC / name).read_text()
    return Response(body=body, status_code=200, headers={"Content-Type": TYPES[".html"]})


def _not_found(what: str) -> Response:
    return error_response(404, "not_found", f"no such page: {what}")


def _needs_extra(extra: str, what: str) -> Response:
    return error_response(501, "extra_missing", f"{what} needs the {extra} extra: pip install 'tilefan[{extra}]'")


def _swagger_dir() -> Path | None:
    try:
        import swagger_ui_bundle
    except ModuleNotFoundError:
        return None
    return Path(swagger_ui_bundle.swagger_ui_path)


def _report_file(report: dict[str, Any], job_id: str, name: str) -> Response:
    from tilefan.entrypoints.report import files as rf

    body: Any
    if name == "logs.csv":
        body = rf.csv_text(rf.attempts_of(report))
    elif name == "error.csv":
        body = rf.csv_text(rf.error_rows(report))
    elif name == "performance.txt":
        body = rf.performance_text(report) + "\n"
    elif name == "runtime.png":
        body = rf.runtime_png(report)
        if body is None:
            return _needs_extra("report", "runtime.png")
    else:
        return _not_found(f"/jobs/{job_id}/report/{name}")
    return Response(body=body, status_code=200, headers={"Content-Type": TYPES[Path(name).suffix]})


def web_pages(service: ServiceProvider, *, authorizer: Authorizer | None = None) -> Blueprint:
    """The web page, Swagger UI and the report files, over ``service``."""
    web = Blueprint(__name__)

    @web.route("/", methods=["GET"], authorizer=authorizer)
    def form_page() -> Response:
        return _page("index.html", "new job")

    @web.route("/ui/jobs", methods=["GET"], authorizer=authorizer)
    def list_page() -> Response:
        return _page("jobs.html", "jobs")

    @web.route("/ui/jobs/{job_id}", methods=["GET"], authorizer=authorizer)
    def job_page(job_id: str) -> Response:
        return _page("job.html", "job")

    @web.route("/static/{name}", methods=["GET"], authorizer=authorizer)
    def static(name: str) -> Response:
        allowed = {p.name for p in STATIC.iterdir() if p.suffix in (".css", ".js")}
        return _file(STATIC / name) if name in allowed else _not_found(f"/static/{name}")

    @web.route("/docs", methods=["GET"], authorizer=authorizer)
    def docs() -> Response:
        if _swagger_dir() is None:
            return _needs_extra("serve", "Swagger UI (the schema itself is at /openapi.json)")
        return Response(body=SWAGGER_PAGE, status_code=200, headers={"Content-Type": TYPES[".html"]})

    @web.route("/docs/assets/{name}", methods=["GET"], authorizer=authorizer)
    def docs_asset(name: str) -> Response:
        folder = _swagger_dir()
        if folder is None or name not in SWAGGER_FILES:
            return _not_found(f"/docs/assets/{name}")
        return _file(folder / name)

    @web.route("/jobs/{job_id}/slice", methods=["GET"], authorizer=authorizer)
    def job_slice(job_id: str) -> Response:
        jobs = service()
        return answer(lambda: jobs.atoms_slice(job_id, caller_of(jobs, web)))

    @web.route("/jobs/{job_id}/report/{name}", methods=["GET"], authorizer=authorizer)
    def report_file(job_id: str, name: str) -> Response:
        try:
            jobs = service()
            return _report_file(jobs.report(job_id, caller_of(jobs, web)), job_id, name)
        except TilefanError as exc:
            return failure(exc)

    return web
