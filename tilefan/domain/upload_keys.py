"""Where an upload and its records live in a blob store, named once for the service that
issues and completes uploads and the store that pins every read of one to the checked bytes.

``uploads/<id>/<name>`` is the file; ``uploads/<id>/.issued.json`` the record written when
the ID is issued; ``uploads/<id>/.complete.json`` the record written once, when the
completion step has checked the file (on AWS: its ETag and VersionId). Record names start
with a dot, which a file name cannot, so no upload key ever names a record.
"""

from __future__ import annotations

import re

UPLOAD_ID = re.compile(r"^[0-9a-f]{16}$")
UPLOAD_KEY = re.compile(r"^uploads/([0-9a-f]{16})/([A-Za-z0-9][A-Za-z0-9._-]{0,127})$")


def issued_key(upload_id: str) -> str:
    """The record written when ``upload_id`` is issued.

    >>> issued_key("0123456789abcdef")
    'uploads/0123456789abcdef/.issued.json'
    """
    return f"uploads/{upload_id}/.issued.json"


def complete_key(upload_id: str) -> str:
    """The record written once, when ``upload_id`` completes.

    >>> complete_key("0123456789abcdef")
    'uploads/0123456789abcdef/.complete.json'
    """
    return f"uploads/{upload_id}/.complete.json"


def upload_id_of(key: str) -> str | None:
    """The upload ID a store key names, or None for any other key.

    >>> upload_id_of("uploads/0123456789abcdef/A.npy"), upload_id_of("uploads/0123456789abcdef/.issued.json")
    ('0123456789abcdef', None)
    """
    match = UPLOAD_KEY.match(key)
    return match.group(1) if match else None
