"""A static HTTP server on loopback for the sample web's images that are not in a WARC.

Serves OUT/static/ with the extra headers listed in OUT/static/_headers.json
(X-Robots-Tag for the no-AI images); unknown paths get a real 404.
"""
from __future__ import annotations

import contextlib
import json
import logging
import mimetypes
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urlsplit

from semantica.errors import UserError

log = logging.getLogger(__name__)


def _handler(root: Path, extra_headers: dict):
    class Handler(BaseHTTPRequestHandler):
        server_version = "semantica-sample-web"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._serve(body=True)

        def do_HEAD(self) -> None:  # noqa: N802
            self._serve(body=False)

        def _serve(self, body: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            target = (root / path.lstrip("/")).resolve()
            if root not in target.parents or not target.is_file() or target.name == "_headers.json":
                self.send_error(404, "Not Found")
                return
            data = target.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", mimetypes.guess_type(target.name)[0] or "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            for k, v in extra_headers.get(path, {}).items():
                self.send_header(k, v)
            self.end_headers()
            if body:
                self.wfile.write(data)

        def log_message(self, fmt: str, *args) -> None:
            log.debug("%s " + fmt, self.address_string(), *args)

    return Handler


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the miner opens 16 connections at once; the default backlog of 5 drops some
    daemon_threads = True


def make_server(folder: Path, host: str, port: int) -> ThreadingHTTPServer:
    root = (Path(folder) / "static").resolve()
    if not root.is_dir():
        raise UserError(f"{folder}: no static/ folder; is this a sample web written by `semantica sample-web`?")
    headers_file = root / "_headers.json"
    extra = json.loads(headers_file.read_text()) if headers_file.exists() else {}
    try:
        server = _Server((host, port), _handler(root, extra))
    except OSError as e:
        raise UserError(f"cannot serve {folder} on {host}:{port}: {e.strerror}") from None
    server.daemon_threads = True
    return server


@contextlib.contextmanager
def serve_sample_web(folder: Path, host: str = "127.0.0.1", port: int = 8765) -> Iterator[str]:
    """Serve in a background thread for the duration of a `with` block; yields the base URL."""
    server = make_server(folder, host, port)
    thread = threading.Thread(target=server.serve_forever, name="sample-web-server", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
