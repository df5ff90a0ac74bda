"""The HTTP front's dispatch: two requests are inside their routes at once, and each route
sees its own request (Chalice's current request is kept per thread)."""

from __future__ import annotations

import io
import json
import threading
from typing import Any

from chalice import Blueprint, Chalice

from tilefan.entrypoints.http.server import ChaliceWsgi, LocalApp


def echo_routes(both_inside: threading.Barrier) -> Blueprint:
    routes = Blueprint(__name__)

    @routes.route("/echo", methods=["POST"])
    def echo() -> dict[str, Any]:
        sent = routes.current_request.json_body
        both_inside.wait()  # passes only if the other request is inside a route too
        # Read again, after the other thread set its request: each sees its own.
        return {"sent": sent, "seen": routes.current_request.json_body}

    return routes


def post(wsgi: ChaliceWsgi, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    raw = json.dumps(body).encode()
    status: list[str] = []
    out = wsgi({"REQUEST_METHOD": "POST", "PATH_INFO": "/echo", "QUERY_STRING": "", "CONTENT_TYPE": "application/json",
                "CONTENT_LENGTH": str(len(raw)), "wsgi.input": io.BytesIO(raw)},
               lambda s, headers: status.append(s))
    return status[0], json.loads(b"".join(out))


def two_at_once(app: Chalice, timeout: float) -> list[tuple[str, dict[str, Any]]]:
    app.register_blueprint(echo_routes(threading.Barrier(2, timeout=timeout)))
    wsgi = ChaliceWsgi(app)
    results: list[tuple[str, dict[str, Any]]] = []
    threads = [threading.Thread(target=lambda n=n: results.append(post(wsgi, {"n": n}))) for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return sorted(results, key=lambda r: str(r[1]))


def test_two_requests_are_dispatched_at_once_each_seeing_its_own() -> None:
    results = two_at_once(LocalApp("dispatch-test"), timeout=10)
    assert [status for status, _ in results] == ["200 OK", "200 OK"]
    assert [doc for _, doc in results] == [{"sent": {"n": 1}, "seen": {"n": 1}}, {"sent": {"n": 2}, "seen": {"n": 2}}]


def test_a_plain_chalice_app_is_still_served_one_request_at_a_time() -> None:
    # Its current request is shared by the threads, so the adapter serializes it: the
    # first request waits at the barrier alone until it breaks, and only then does the
    # second enter (and find it broken).
    results = two_at_once(Chalice("dispatch-test-plain"), timeout=1)
    assert [status for status, _ in results] == ["500 Internal Server Error"] * 2
