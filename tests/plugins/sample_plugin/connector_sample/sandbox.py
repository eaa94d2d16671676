"""An extension plugin: a local emulator of the sample API for ``connector run --sandbox``."""

import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from connector_core import hookimpl

TITLE = "Sample sandbox"


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format, *args):
        pass

    def do_GET(self):
        found = self.path == "/status"
        body = json.dumps({"ok": True, "sandbox": True} if found else {"message": "no such path"}).encode()
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextlib.contextmanager
def _serve():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"apiUrl": f"http://127.0.0.1:{server.server_address[1]}", "user": "demo", "token": "demo-token"}
    finally:
        server.shutdown()
        server.server_close()


@hookimpl
def sandbox(connector):
    return _serve() if connector == "sample" else None
