"""A local HTTP server that misbehaves on purpose, for download tests.

    from httpfault import FaultServer, Serve, Status, Reset, Truncate, Stall, Trickle

    with FaultServer() as srv:                       # 127.0.0.1, random port, daemon thread
        srv.add("/a.bin", body, [Reset(after=1000), Serve()])   # reset once, then honour Range
        srv.add("/gone", b"", [Status(404)])
        download_file(srv.url("/a.bin"), tmp_path)
        assert srv.count("/a.bin") == 2 and srv.ranges("/a.bin")[1] == "bytes=1000-"

Each path has a *script*: request k uses `script[k]`, and the last step repeats forever. Steps:
- `Serve(honour_range=True, status=200, body=None, content_type=None)`: the body (206 +
  Content-Range when a valid Range came and `honour_range`; 416 for a range past the end);
  `honour_range=False` ignores Range; `body` replaces the route's body for this step (an HTML
  error page, say); `content_type` replaces the route's (`add(..., content_type=)`).
- `Status(code)`: that status with a short text body.
- `Reset(after=K)`: headers with the full Content-Length, K bytes, then a TCP RST.
- `Truncate(after=K)`: headers with the full Content-Length, K bytes, then a clean close.
- `Stall(after=K, seconds=s)`: K bytes, then silence for `s` seconds (to trigger timeouts).
- `Trickle(interval=s, headers=False)`: one byte every `s` seconds, of the body or (with
  `headers=True`) of the whole response from its status line on, until done or stopped.
Reset/Truncate/Stall/Trickle also honour a Range for where they start. Every request is recorded
(`requests(path)`, `count(path)`, `ranges(path)`) so tests can assert attempts and resumes.
Handler threads are daemons and `stop()` shuts the server down, so nothing outlives a test.
"""

from __future__ import annotations

import re
import socket
import struct
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Serve:
    honour_range: bool = True
    status: int = 200
    body: bytes | None = None
    content_type: str | None = None


@dataclass(frozen=True)
class Status:
    code: int


@dataclass(frozen=True)
class Reset:
    after: int


@dataclass(frozen=True)
class Truncate:
    after: int


@dataclass(frozen=True)
class Stall:
    after: int
    seconds: float = 2.0


@dataclass(frozen=True)
class Trickle:
    interval: float
    headers: bool = False


Step = Serve | Status | Reset | Truncate | Stall | Trickle


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    range: str | None
    headers: dict[str, str]


@dataclass
class _Route:
    body: bytes
    script: list[Step]
    content_type: str = "application/octet-stream"


def _parse_range(header: str | None, size: int) -> int | None:
    """Start offset of `bytes=N-` (the only form our client sends), None when absent/other."""
    m = re.fullmatch(r"bytes=(\d+)-", (header or "").strip())
    return int(m.group(1)) if m else None


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        pass  # keep test output clean

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        srv = self.server
        path = self.path.split("?", 1)[0]
        with srv.lock:
            k = len(srv.log[path])
            srv.log[path].append(
                RequestRecord("GET", self.path, self.headers.get("Range"), dict(self.headers))
            )
            route = srv.routes.get(path)
        self.close_connection = True
        if route is None:
            self._text(404, "Not Found")
            return
        step = route.script[min(k, len(route.script) - 1)]
        if isinstance(step, Status):
            self._text(step.code, f"status {step.code}")
            return
        body = step.body if isinstance(step, Serve) and step.body is not None else route.body
        content_type = (step.content_type if isinstance(step, Serve) else None) or route.content_type
        start = _parse_range(self.headers.get("Range"), len(body))
        honour = not isinstance(step, Serve) or step.honour_range
        if isinstance(step, Trickle) and step.headers:
            head = (f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                    "Connection: close\r\n\r\n").encode()
            self._trickle(head + body, step.interval)
            return
        if start is not None and honour:
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            start = 0
            self.send_response(step.status if isinstance(step, Serve) else 200)
        payload = body[start:]
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            if isinstance(step, Serve):
                self.wfile.write(payload)
            elif isinstance(step, Truncate):
                self.wfile.write(payload[: step.after])
            elif isinstance(step, Reset):
                self.wfile.write(payload[: step.after])
                self.wfile.flush()
                # Let the client read what was sent before the RST discards its receive queue.
                time.sleep(0.2)
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()
            elif isinstance(step, Stall):
                self.wfile.write(payload[: step.after])
                self.wfile.flush()
                srv.stopping.wait(step.seconds)
            elif isinstance(step, Trickle):
                self._trickle(payload, step.interval)
        except OSError:
            pass  # the client went away; that is what these steps provoke

    def _trickle(self, data: bytes, interval: float) -> None:
        try:
            for i in range(len(data)):
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
                if self.server.stopping.wait(interval):
                    return
        except OSError:
            pass

    def _text(self, code: int, text: str) -> None:
        data = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.routes: dict[str, _Route] = {}
        self.log: defaultdict[str, list[RequestRecord]] = defaultdict(list)
        self.stopping = threading.Event()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # provoked disconnects are expected; don't print tracebacks


class FaultServer:
    """Owns a `_Server` on 127.0.0.1:<random port> served from a daemon thread."""

    def __init__(self) -> None:
        self._srv = _Server()
        self._thread = threading.Thread(
            target=self._srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._srv.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def add(self, path: str, body: bytes, script: list[Step] | None = None, *,
            content_type: str = "application/octet-stream") -> str:
        """Serve `body` at `path` following `script` (default: `[Serve()]`); returns the URL."""
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        with self._srv.lock:
            self._srv.routes[path] = _Route(body, list(script or [Serve()]), content_type)
        return self.url(path)

    def requests(self, path: str) -> list[RequestRecord]:
        with self._srv.lock:
            return list(self._srv.log.get(path, []))

    def count(self, path: str) -> int:
        return len(self.requests(path))

    def ranges(self, path: str) -> list[str | None]:
        return [r.range for r in self.requests(path)]

    def total_requests(self) -> int:
        with self._srv.lock:
            return sum(len(v) for v in self._srv.log.values())

    def start(self) -> FaultServer:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._srv.stopping.set()  # wakes Stall steps
        running = self._thread.is_alive()
        if running:  # shutdown() waits forever if serve_forever never ran
            self._srv.shutdown()
        self._srv.server_close()
        if running:
            self._thread.join(timeout)

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
