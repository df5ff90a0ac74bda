"""Uploads on AWS (moto) are completed once, after a check of the bytes S3 holds, and every
read is pinned to those bytes: posting to the form again after completion cannot slip a
job different data. The form is posted as ``tilefan.Client`` encodes it, to moto's S3."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pytest
import requests
from chalice.test import Client

from tests.functional.aws_stack import BUCKET, Stack, aws_api
from tests.functional.identity import ALICE, client_as
from tests.functional.rest_client import JSON, post_job, submit, wait_job
from tests.helpers import atoms_csv, npy_bytes, s3_array
from tilefan.adapters.aws.s3_store import S3BlobStore
from tilefan.entrypoints.sdk.client import Client as ApiClient
from tilefan.entrypoints.sdk.client import form_body
from tilefan.errors import InvalidBlobError
from tilefan.service.response_models import UploadComplete
from tilefan.service.uploads import COMPLETE_GRACE_S

A = np.arange(12, dtype=np.float64).reshape(4, 3)


@pytest.fixture
def client() -> Any:
    """The app over the moto stack (this package's conftest serves the embedded one)."""
    with client_as(aws_api(), ALICE) as c:  # as API Gateway passes on a SigV4-signed request
        yield c


def issue(client: Client, name: str) -> dict[str, Any]:
    response = client.http.post("/uploads", headers=JSON, body=json.dumps({"filename": name}))
    assert response.status_code == 201, response.json_body
    target: dict[str, Any] = response.json_body
    return target


def post_form(target: dict[str, Any], data: bytes) -> None:
    """What a client does with the ticket: a multipart POST of the policy fields and the file."""
    body, content_type = form_body(target["fields"], target["key"].rsplit("/", 1)[1], data)
    reply = requests.post(target["url"], data=body, headers={"Content-Type": content_type}, timeout=10)
    assert reply.status_code == 204, reply.text


def complete(client: Client, target: dict[str, Any]) -> Any:
    return client.http.post(target["complete"])


def sent(client: Client, name: str, data: bytes) -> dict[str, Any]:
    target = issue(client, name)
    post_form(target, data)
    done = complete(client, target)
    assert done.status_code == 200, done.json_body
    assert done.json_body["status"] == "COMPLETE" and done.json_body["use_as"] == target["use_as"]
    return target


def records(stack: Stack, target: dict[str, Any]) -> list[str]:
    listed = stack.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=f"uploads/{target['upload_id']}/")
    return sorted(item["Key"].rsplit("/", 1)[1] for item in listed.get("Contents", []))


def test_a_completed_upload_records_its_etag_once_and_a_job_reads_it(stack: Stack, client: Client) -> None:
    target = sent(client, "A.npy", npy_bytes(A))
    head = stack.client("s3").head_object(Bucket=BUCKET, Key=target["key"])
    first = complete(client, target)  # again: the same answer, nothing rewritten
    assert first.status_code == 200 and first.json_body["etag"] == head["ETag"]
    assert first.json_body["bytes"] == head["ContentLength"]
    UploadComplete.model_validate(first.json_body)  # the documented shape, nothing more
    assert records(stack, target) == [".complete.json", ".issued.json", "A.npy"]
    spec = {"kind": "add", "a": target["use_as"], "b": target["use_as"], "tile": 2}
    doc = wait_job(client, submit(client, spec))
    assert doc["status"] == "SUCCEEDED", doc["error"]
    np.testing.assert_array_equal(s3_array(stack.client("s3"), f"s3://{BUCKET}/jobs/{doc['job_id']}/out.npy"), A + A)


@pytest.mark.parametrize("name, data, why", [
    ("A.npy", b"not an npy file at all", "not a valid .npy file"),
    ("A.npy", npy_bytes(np.ones(5)), "2-D float32 or float64"),
    ("A.npy", npy_bytes(A)[:-8], "its header says"),
    ("atoms.csv", b"x,y,z,energy\n1,2,3\n", "expected 4 columns"),
    ("atoms.csv", b"\xff\xfe1,2,3,4\n", "UTF-8"),
])
def test_completion_refuses_bad_content_and_records_nothing(stack: Stack, client: Client, name: str, data: bytes,
                                                            why: str) -> None:
    target = issue(client, name)
    post_form(target, data)
    refused = complete(client, target)
    assert refused.status_code == 400, refused.json_body
    assert refused.json_body["error"]["field"] == "upload"
    assert why in refused.json_body["error"]["message"]
    assert ".complete.json" not in records(stack, target)
    role = "atoms" if name.endswith(".csv") else "a"
    spec = {"kind": "atoms", "grid": 4, "atoms": target["use_as"]} if role == "atoms" else \
        {"kind": "add", "a": target["use_as"], "b": {"shape": [4, 3]}}
    job = post_job(client, spec)
    assert job.status_code == 400 and job.json_body["error"]["field"] == f"{role}.file"
    assert f"POST /uploads/{target['upload_id']}/complete" in job.json_body["error"]["message"]


def test_a_csv_upload_is_checked_and_used(stack: Stack, client: Client) -> None:
    table = np.array([[1.2, 2.3, 0.4, -1.0], [2.5, 0.5, 1.5, 0.5]])
    target = sent(client, "atoms.csv", atoms_csv(table).encode())
    doc = wait_job(client, submit(client, {"kind": "atoms", "grid": 4, "atoms": target["use_as"]}))
    assert doc["status"] == "SUCCEEDED", doc["error"]


def test_a_job_naming_an_upload_not_yet_complete_is_refused(stack: Stack, client: Client) -> None:
    target = issue(client, "A.npy")
    not_sent = complete(client, target)
    assert not_sent.status_code == 409 and "no file has arrived" in not_sent.json_body["error"]["message"]
    post_form(target, npy_bytes(A))  # sent, but never completed
    job = post_job(client, {"kind": "add", "a": target["use_as"], "b": {"shape": [4, 3]}})
    assert job.status_code == 400 and job.json_body["error"]["field"] == "a.file"
    message = job.json_body["error"]["message"]
    assert f"upload {target['upload_id']} is not complete" in message and "/complete" in message


def test_an_overwrite_after_completion_is_refused_and_fails_reads(stack: Stack, client: Client) -> None:
    target = sent(client, "A.npy", npy_bytes(A))
    before = complete(client, target).json_body
    post_form(target, npy_bytes(A * 2))  # the form is still valid: S3 takes the second POST
    # Completing again changes nothing: the record of the checked bytes stands.
    assert complete(client, target).json_body == before
    job = post_job(client, {"kind": "add", "a": target["use_as"], "b": {"shape": [4, 3]}})
    assert job.status_code == 400, job.json_body
    assert job.json_body["error"]["field"] == "a.file"
    assert "was replaced after its upload was completed" in job.json_body["error"]["message"]
    # A tile that reads after the overwrite (a job accepted before it) fails the same way.
    store = S3BlobStore(stack.client("s3"), BUCKET)
    with pytest.raises(InvalidBlobError, match="was replaced after its upload was completed"):
        store.read_rows(target["key"], (0, 2))


@pytest.mark.parametrize("expired_s, status", [(60, 200), (COMPLETE_GRACE_S + 60, 410)])
def test_completing_an_expired_upload_is_gone_after_the_grace(stack: Stack, client: Client, expired_s: int,
                                                               status: int) -> None:
    target = issue(client, "A.npy")
    post_form(target, npy_bytes(A))
    s3 = stack.client("s3")
    record_key = f"uploads/{target['upload_id']}/.issued.json"
    record = json.loads(s3.get_object(Bucket=BUCKET, Key=record_key)["Body"].read())
    expired = {**record, "expires_at": time.time() - expired_s}
    s3.put_object(Bucket=BUCKET, Key=record_key, Body=json.dumps(expired).encode())
    answer = complete(client, target)
    assert answer.status_code == status, answer.json_body
    if status == 410:
        assert answer.json_body["error"]["code"] == "upload_expired"
        assert ".complete.json" not in records(stack, target)


def test_the_completion_record_is_written_once(stack: Stack) -> None:
    store = S3BlobStore(stack.client("s3"), BUCKET)
    key = "uploads/0123456789abcdef/.complete.json"
    assert store.put_json_once(key, {"etag": "first"}) is True
    assert store.put_json_once(key, {"etag": "second"}) is False
    assert store.get_json(key) == {"etag": "first"}


def test_completing_an_unknown_upload_is_not_found(stack: Stack, client: Client) -> None:
    for upload_id in ("0123456789abcdef", "not-an-id"):
        response = client.http.post(f"/uploads/{upload_id}/complete")
        assert response.status_code == 404 and response.json_body["error"]["code"] == "not_found"


class _InProcess(ApiClient):
    """``tilefan.Client`` with its API requests sent to the Chalice test client and its
    S3 requests to moto (through ``requests``, which moto intercepts)."""

    def __init__(self, chalice: Client) -> None:
        super().__init__("http://api.test")
        self.chalice = chalice

    def _send(self, method: str, path: str, body: bytes | None = None,
              headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        if path.startswith("https://"):
            reply = requests.request(method, path, data=body, headers=headers, timeout=10)
            return reply.status_code, dict(reply.headers), reply.content
        answer = self.chalice.http.request(method, path, headers=headers or {}, body=body or b"")
        return answer.status_code, dict(answer.headers), answer.body


def test_the_python_client_posts_the_form_and_completes(stack: Stack, client: Client, tmp_path: Any) -> None:
    path = tmp_path / "A.npy"
    np.save(path, A)
    use_as = _InProcess(client).upload(path)
    upload_id = use_as["file"].split("/")[1]
    assert records(stack, {"upload_id": upload_id}) == [".complete.json", ".issued.json", "A.npy"]
    doc = wait_job(client, submit(client, {"kind": "add", "a": use_as, "b": use_as, "tile": 2}))
    assert doc["status"] == "SUCCEEDED", doc["error"]
