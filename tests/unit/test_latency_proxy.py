"""tools/latency_proxy.py: bytes pass unchanged, every request pays the latency once, and
requests on separate connections overlap (as against a real object store)."""

from __future__ import annotations

import http.client
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

from latency_proxy import LatencyProxy

LATENCY = 0.1


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: several requests per connection

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[::-1])

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[LatencyProxy]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with LatencyProxy(("127.0.0.1", server.server_address[1]), LATENCY) as p:
            yield p
    finally:
        server.shutdown()
        server.server_close()


def put(conn: http.client.HTTPConnection, body: bytes) -> bytes:
    conn.request("PUT", "/obj", body=body)
    resp = conn.getresponse()
    assert resp.status == 200
    return resp.read()


def test_each_request_pays_the_latency_once_and_bytes_pass_unchanged(proxy) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    body = bytes(range(256)) * 8192  # 2 MiB: many reads, one request
    start = time.perf_counter()
    for _ in range(3):
        assert put(conn, body) == body[::-1]
    took = time.perf_counter() - start
    conn.close()
    assert proxy.requests == 3
    assert 3 * LATENCY <= took < 3 * LATENCY + 1.5, took


def test_requests_on_separate_connections_overlap(proxy) -> None:
    took: list[float] = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        start = time.perf_counter()
        put(conn, b"x" * 100)
        took.append(time.perf_counter() - start)
        conn.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(took) == 5 and min(took) >= LATENCY
    assert time.perf_counter() - start < 5 * LATENCY  # not one after the other


def test_stop_closes_the_port(proxy) -> None:
    port = proxy.port
    proxy.stop()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    with pytest.raises(OSError):
        put(conn, b"x")
