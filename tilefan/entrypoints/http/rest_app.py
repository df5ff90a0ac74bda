"""The HTTP doors put together: the REST routes, the web pages and the one guard before them.

``app.py`` (AWS, with API Gateway's authorizer and ``AllowAll``) and ``tilefan serve``
(no authorizer, the Host and token policy) each call ``http_app`` with what they built:
the composition roots choose the service, the authorizer and the access policy, and
nothing is left in a module for a later request to find.
"""

from __future__ import annotations

from chalice import Chalice
from chalice.app import Authorizer

from tilefan.entrypoints.http.access import AccessPolicy
from tilefan.entrypoints.http.rest import ServiceProvider, rest_api
from tilefan.entrypoints.http.web import web_pages


def http_app(app: Chalice, service: ServiceProvider, *, authorizer: Authorizer | None,
             access: AccessPolicy) -> Chalice:
    """``app`` with every HTTP route over ``service``, each behind ``access`` (and ``authorizer``)."""
    app.register_blueprint(rest_api(service, authorizer=authorizer, access=access))
    app.register_blueprint(web_pages(service, authorizer=authorizer))  # the web page, Swagger UI, report files
    return app
