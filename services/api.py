"""The worker's small loopback read API, so other processes can read an embedded store the worker owns.

GET /health                         -> {"ok": true}
POST /sql  (body: one SQL statement) -> {"columns": [...], "rows": [[...]]}: the embedded store, for analysts
                                       and operators (the API listens on loopback unless configured otherwise)
POST /replay/<projection>           -> start a rebuild in the worker (see services.replay); GET /replay: its
                                       progress; DELETE /replay: cancel it; GET /replay/<projection>/verify:
                                       parity with the previous version; POST /replay/<projection>/drop-old
GET /<query>[/<customer>]?<params>  -> {"rows": [...]}; a query of ``services.queries.QUERIES``, e.g.
                                       /timeline/cust-1?since=2026-11-01T00:00:00Z, /flags?suppression=true
Errors are JSON ``{"error": ...}`` with a 4xx/5xx status.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

import orjson
from clickhouse_connect.driver.client import Client

from projections.replay import ReplayError
from services.queries import QUERIES, run_query, run_sql
from services.replay import Replays


def dumps(obj) -> bytes:
    return orjson.dumps(obj, default=str)  # Decimal and friends as text


class ReadAPI:
    """Serves reads from ``client`` on ``host:port`` in a daemon thread; ``port=0`` picks a free port."""

    def __init__(self, client: Client, host: str, port: int, replays: Replays | None = None):
        lock = threading.Lock()  # one clickhouse client serves one query at a time

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet: the worker log is for the pipeline
                pass

            def _send(self, status: int, body: dict) -> None:
                data = dumps(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the caller gave up waiting (a readiness poll with a short timeout): nothing to tell

            def _replay(self, method: str) -> None:
                parts = [unquote(p) for p in urlparse(self.path).path.strip("/").split("/")]
                if replays is None:
                    return self._send(404, {"error": "this process runs no rebuilds"})
                try:
                    if method == "GET" and parts == ["replay"]:
                        return self._send(200, {"replay": replays.status()})
                    if method == "DELETE" and parts == ["replay"]:
                        return self._send(200, {"cancelled": replays.cancel()})
                    if method == "POST" and len(parts) == 2:
                        return self._send(202, {"replay": replays.start(parts[1]).as_dict()})
                    if method == "POST" and len(parts) == 3 and parts[2] == "drop-old":
                        return self._send(200, {"dropped": replays.drop_old(parts[1])})
                    if method == "GET" and len(parts) == 3 and parts[2] == "verify":
                        return self._send(200, {"differences": replays.verify(parts[1])})
                    return self._send(404, {"error": f"no such resource: {self.path}"})
                except ReplayError as exc:
                    return self._send(409, {"error": str(exc)})
                except Exception as exc:
                    return self._send(500, {"error": f"{type(exc).__name__}: {exc}"})

            def do_POST(self):
                if urlparse(self.path).path == "/sql":
                    return self._sql()
                return self._replay("POST")

            def _sql(self) -> None:
                statement = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                try:
                    with lock:
                        return self._send(200, run_sql(client, statement))
                except Exception as exc:
                    return self._send(400, {"error": f"{type(exc).__name__}: {exc}"})

            def do_DELETE(self):
                return self._replay("DELETE")

            def do_GET(self):
                if self.path.startswith("/replay"):
                    return self._replay("GET")
                url = urlparse(self.path)
                params: dict[str, object] = {k: v[-1] for k, v in parse_qs(url.query).items()}
                parts = [unquote(p) for p in url.path.strip("/").split("/")]
                if parts == ["health"]:
                    return self._send(200, {"ok": True})
                if not 1 <= len(parts) <= 2 or parts[0] not in QUERIES:
                    return self._send(404, {"error": f"no such resource: {url.path}"})
                if len(parts) == 2:
                    params["customer_id"] = parts[1]
                try:
                    with lock:
                        rows = run_query(client, parts[0], params)
                    return self._send(200, {"rows": rows})
                except ValueError as exc:
                    return self._send(400, {"error": str(exc)})
                except Exception as exc:
                    return self._send(500, {"error": f"{type(exc).__name__}: {exc}"})

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="read-api", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ReadAPI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
