"""The embedded service behind the REST blueprint, in a temp home: the same fixtures as
the embedded REST suite."""

from tests.functional.rest_embedded.conftest import app, built, client, home, make_service, out_dir, service

__all__ = ["app", "built", "client", "home", "make_service", "out_dir", "service"]
