"""A stand-in for the Hugging Face hub's model API on 127.0.0.1: `GET /api/models/{org}/{name}/revision/{rev}`.

It answers the JSON the hub answers (`id`, `sha`, ...) for the revisions it was given, 404 with the
hub's error header for anything else, and records every path asked for.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


class HubStub:
    """with HubStub({("org/name", "main"): "<sha>"}) as hub: ... HfApi(endpoint=hub.endpoint) ..."""

    def __init__(self, revisions: dict[tuple[str, str], str]):
        self.revisions = revisions
        self.paths: list[str] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path = urlsplit(self.path).path
                stub.paths.append(path)
                parts = path.split("/")
                # /api/models/<org>/<name>/revision/<rev>
                if len(parts) == 7 and parts[1:3] == ["api", "models"] and parts[5] == "revision":
                    repo, rev = f"{parts[3]}/{parts[4]}", unquote(parts[6])
                    sha = stub.revisions.get((repo, rev))
                    if sha:
                        return self._send(200, {"id": repo, "sha": sha, "private": False, "siblings": []})
                self._send(404, {"error": "Revision Not Found"}, {"X-Error-Code": "RevisionNotFound"})

            def _send(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "HubStub":
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
