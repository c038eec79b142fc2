"""A TCP proxy on loopback that adds a fixed latency to every request: a slow object store.

    .venv/bin/python tools/latency_proxy.py --target 127.0.0.1:5000 --latency-ms 30 [--port 0]

Put it in front of a local S3 endpoint (moto's server) to make each request cost what a
round trip to a real object store costs (20-50 ms), and point ``fs.s3a.endpoint`` (or boto3's
``endpoint_url``) at the proxy. Bytes are forwarded unchanged, so it works for HTTP/1.1 with
keep-alive and for any other request/response protocol.

What counts as a request: on each connection, the first bytes the client sends after the
connection opened or after the server last answered. Those bytes are held for the latency
before they are forwarded; the rest of the request (a large PUT body arriving in many reads)
follows without further delay. A request answered with ``100 Continue`` before its body is
sent pays twice, as it does on a real network. Connections are independent: a request
delayed on one does not delay the others (requests on separate connections overlap, as
they do against S3).

In a program::

    with LatencyProxy(("127.0.0.1", 5000), latency_s=0.03) as proxy:
        endpoint = f"http://127.0.0.1:{proxy.port}"

The proxy runs an asyncio loop on a daemon thread of the caller; ``stop()`` (or leaving the
``with`` block) closes the listening socket and every open connection.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import threading
from types import TracebackType

#: bytes read per socket read
CHUNK = 256 * 1024


class LatencyProxy:
    """Forward ``127.0.0.1:<port>`` to ``target``, adding ``latency_s`` to every request."""

    def __init__(
        self,
        target: tuple[str, int],
        latency_s: float,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if latency_s < 0:
            raise ValueError(f"latency_s must be >= 0, not {latency_s}")
        self.target, self.latency_s, self.host = target, latency_s, host
        self.port = port
        #: requests forwarded so far (each paid the latency once)
        self.requests = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    # -- life cycle ---------------------------------------------------------------------------
    def start(self) -> LatencyProxy:
        """Listen (on a free port if ``port`` was 0) and serve on a daemon thread."""
        ready = threading.Event()
        failed: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._handle, self.host, self.port)
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:  # a port in use: reported by start()
                failed.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=serve, name="latency-proxy", daemon=True)
        self._thread.start()
        ready.wait()
        if failed:
            raise failed[0]
        return self

    def stop(self) -> None:
        """Close the listening socket and every connection; wait for the thread to end."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for w in list(self._writers):
                w.close()
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        thread.join(timeout=10)

    def __enter__(self) -> LatencyProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        """``http://host:port`` of the proxy."""
        return f"http://{self.host}:{self.port}"

    # -- one connection -------------------------------------------------------------------------
    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.close()
            return
        self._writers.update((client_w, server_w))
        #: set when the server has answered: the client's next bytes start a new request
        answered = [True]

        async def upstream() -> None:
            while data := await client_r.read(CHUNK):
                if answered[0]:
                    answered[0] = False
                    self.requests += 1
                    await asyncio.sleep(self.latency_s)
                server_w.write(data)
                await server_w.drain()

        async def downstream() -> None:
            while data := await server_r.read(CHUNK):
                answered[0] = True
                client_w.write(data)
                await client_w.drain()

        try:
            tasks = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for w in (client_w, server_w):
                self._writers.discard(w)
                with contextlib.suppress(Exception):
                    w.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", required=True, help="host:port to forward to")
    p.add_argument("--latency-ms", type=float, default=30.0, help="added to every request")
    p.add_argument("--port", type=int, default=0, help="port to listen on (0: a free one)")
    a = p.parse_args(argv)
    host, _, port = a.target.rpartition(":")
    proxy = LatencyProxy((host or "127.0.0.1", int(port)), a.latency_ms / 1000, port=a.port)
    proxy.start()
    print(f"{proxy.endpoint} -> {a.target} (+{a.latency_ms:g} ms per request)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        proxy.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
