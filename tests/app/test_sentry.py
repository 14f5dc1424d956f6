"""An exception inside a request reaches a Sentry-compatible endpoint through the real SDK,
tagged with the request id, and carries no key or question text."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import brotli
import httpx
import pytest
import sentry_sdk

from chatwizard import policy
from chatwizard.core.settings import Settings
from chatwizard.main import create_app

SECRET_QUESTION = "my private question about doors"


class Collector(BaseHTTPRequestHandler):
    envelopes: list[bytes] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        coding = self.headers.get("Content-Encoding")  # the SDK sends brotli when the module is there
        body = brotli.decompress(body) if coding == "br" else gzip.decompress(body) if coding == "gzip" else body
        Collector.envelopes.append(body)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def sentry_endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://publickey@127.0.0.1:{server.server_address[1]}/42"
    server.shutdown()
    sentry_sdk.get_client().close()


async def test_unhandled_exception_reaches_sentry_with_request_id(sentry_endpoint, monkeypatch):
    app = create_app(Settings(sentry_dsn=sentry_endpoint, environment="test"))

    async def explode() -> None:
        raise RuntimeError("the catalogue index is corrupt")

    app.add_api_route("/v1/explode", explode, methods=["POST"])
    monkeypatch.setitem(policy.ROUTE_POLICY, ("POST", "/v1/explode"), "public")
    monkeypatch.setattr(policy, "UNTHROTTLED", {*policy.UNTHROTTLED, ("POST", "/v1/explode")})
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        response = await client.post("/v1/explode", json={"question": SECRET_QUESTION},
                                     headers={"Authorization": "Bearer cwk_secretsecretsecretsecretsecret000000",
                                              "X-Request-ID": "req-sentry-test-1"})
    sentry_sdk.flush(timeout=5)
    assert response.status_code == 500
    assert response.json() == {"type": "about:blank", "title": "Internal Server Error", "status": 500,
                               "detail": "internal error", "instance": "urn:chatwizard:request:req-sentry-test-1",
                               "request_id": "req-sentry-test-1"}
    sent = b"".join(Collector.envelopes).decode()
    assert "the catalogue index is corrupt" in sent and "RuntimeError" in sent
    assert '"request_id":"req-sentry-test-1"' in sent.replace(" ", "")
    assert "cwk_" not in sent and SECRET_QUESTION not in sent
