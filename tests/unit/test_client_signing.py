"""tilefan.Client signs requests to a deployed API with SigV4, and nothing else.

The signature is recomputed here from the SigV4 specification (canonical request, string
to sign, derived key), so the test checks what API Gateway's IAM authorizer will check,
not merely that a header is present. Credentials are fake and nothing leaves the process.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest

from tilefan.entrypoints.sdk.client import Client

URL = "https://abc123defg.execute-api.eu-west-1.amazonaws.com/api"
KEY_ID, SECRET = "AKIDEXAMPLEFAKE00000", "fake/secret/key/for/the/signing/test000"


@pytest.fixture(autouse=True)
def fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def expected_signature(method: str, path: str, query: str, headers: dict[str, str], signed: list[str],
                       body: bytes, amz_date: str, region: str) -> str:
    canonical_headers = "".join(f"{name}:{headers[name].strip()}\n" for name in signed)
    canonical = "\n".join([method, path, query, canonical_headers, ";".join(signed),
                           hashlib.sha256(body).hexdigest()])
    scope = f"{amz_date[:8]}/{region}/execute-api/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(("AWS4" + SECRET).encode(), amz_date[:8])
    for part in (region, "execute-api", "aws4_request"):
        key = _hmac(key, part)
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


@pytest.mark.parametrize(("method", "body"), [("GET", b""), ("POST", b'{"kind": "add"}')])
def test_requests_to_api_gateway_carry_a_valid_sigv4_signature(method: str, body: bytes) -> None:
    client = Client(URL)
    url = URL + "/jobs"
    headers = client._headers(method, url, body or None, {"Content-Type": "application/json"} if body else {})
    lowered = {k.lower(): v for k, v in headers.items()}
    auth = lowered["authorization"]
    amz_date = lowered["x-amz-date"]
    assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={KEY_ID}/{amz_date[:8]}/eu-west-1/execute-api/aws4_request")
    signed = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
    assert "host" in signed and "x-amz-date" in signed
    lowered.setdefault("host", "abc123defg.execute-api.eu-west-1.amazonaws.com")
    want = expected_signature(method, "/api/jobs", "", lowered, signed, body, amz_date, "eu-west-1")
    assert auth.endswith(f"Signature={want}")
    assert SECRET not in str(headers)


def test_a_token_client_and_a_local_server_are_never_signed() -> None:
    with_token = Client(URL, token="t0ken")
    assert with_token._headers("GET", URL + "/jobs", None, {}) == {"Authorization": "Bearer t0ken"}
    local = Client("http://127.0.0.1:8000")
    assert local._headers("GET", "http://127.0.0.1:8000/jobs", None, {}) == {}
