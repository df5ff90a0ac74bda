"""The embedded service behind the REST blueprint, in a temp home: the same fixtures as
the embedded REST suite."""

from tests.functional.rest_embedded.conftest import client, home, make_service, out_dir, service

__all__ = ["client", "home", "make_service", "out_dir", "service"]
