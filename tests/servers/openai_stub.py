"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests and benchmarks.

`POST /v1/chat/completions` answers `echo: <last user text>` after a fixed delay, or with a fault.
Faults follow a deterministic schedule, whatever the thread timing: a request is identified by the
hash of its messages (so its retries are recognised), and the outcome of its attempt n is
`script[n]` if the script is that long, else a fault with probability `fault_rate`, drawn by a
generator seeded with (seed, request, attempt). Every request is recorded. The server is bounded
(body size, request count, lifetime) and shuts itself down after `lifetime_s`.

    with OpenAIStub(script=["429", "ok"], retry_after=1) as stub:
        ... OpenAI(base_url=stub.base_url) ...
        stub.records

Benchmarks run it in a child process instead (`serve_in_subprocess`), so that the server does not
share the client's interpreter lock, as no real server does.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import socket
import struct
import subprocess
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator, Sequence

# Outcomes a script may name; FAULTS are the transient ones a client should retry.
OUTCOMES = ("ok", "429", "500", "503", "400", "timeout", "malformed", "empty", "content_filter", "refusal",
            "reset")
FAULTS = ("429", "500", "503", "timeout", "malformed", "empty")


@dataclass(frozen=True)
class Record:
    """One request as the server saw it, and what it was answered with."""

    identity: str
    attempt: int
    outcome: str
    body: dict[str, Any]
    authorization: str | None


class OpenAIStub:
    """The server, run in a background thread while the `with` block lasts."""

    def __init__(self, *, delay_s: float = 0.0, script: Sequence[str] = (), fault_rate: float = 0.0,
                 faults: Sequence[str] = FAULTS, seed: int = 0, retry_after: float | None = None,
                 hang_s: float = 2.0, lifetime_s: float = 120.0, max_requests: int = 20_000,
                 max_body_bytes: int = 32 << 20, reply: Callable[[dict[str, Any]], str] | None = None):
        unknown = set(script) - set(OUTCOMES) | set(faults) - set(OUTCOMES)
        if unknown:
            raise ValueError(f"unknown outcomes {sorted(unknown)} (known: {', '.join(OUTCOMES)})")
        self.delay_s, self.script, self.fault_rate, self.faults = delay_s, list(script), fault_rate, list(faults)
        self.seed, self.retry_after, self.hang_s = seed, retry_after, hang_s
        self.lifetime_s, self.max_requests, self.max_body_bytes = lifetime_s, max_requests, max_body_bytes
        self.reply = reply  # content of "ok" answers from the request body; default: echo
        self.records: list[Record] = []
        self._attempts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._timer: threading.Timer | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> "OpenAIStub":
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.stub = self
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         name="openai-stub", daemon=True).start()
        self._timer = threading.Timer(self.lifetime_s, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Shut down (idempotent); handlers still waiting wake up and finish at once."""
        with self._lock:
            server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        if self._timer is not None:
            self._timer.cancel()
        server.shutdown()
        server.server_close()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "the stub is not running"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    # --- the schedule ----------------------------------------------------------------------------

    def outcome(self, identity: str, attempt: int) -> str:
        """What attempt `attempt` of request `identity` gets: a pure function of the configuration."""
        if attempt < len(self.script):
            return self.script[attempt]
        rng = random.Random(f"{self.seed}:{identity}:{attempt}")
        if self.fault_rate and rng.random() < self.fault_rate:
            return rng.choice(self.faults)
        return "ok"

    def by_request(self) -> dict[str, list[Record]]:
        """Records grouped by request identity, attempts in order."""
        groups: dict[str, list[Record]] = {}
        for rec in sorted(self.records, key=lambda r: (r.identity, r.attempt)):
            groups.setdefault(rec.identity, []).append(rec)
        return groups

    def _admit(self, body: dict[str, Any], authorization: str | None) -> Record | None:
        """Record a request and decide its outcome; None once the request limit is reached."""
        identity = request_identity(body)
        with self._lock:
            if len(self.records) >= self.max_requests:
                return None
            attempt = self._attempts.get(identity, 0)
            self._attempts[identity] = attempt + 1
            record = Record(identity, attempt, self.outcome(identity, attempt), body, authorization)
            self.records.append(record)
        return record

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)


def request_identity(body: dict[str, Any]) -> str:
    """A request's identity: the hash of its messages, the same on every retry."""
    blob = json.dumps(body.get("messages"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def last_user_text(body: dict[str, Any]) -> str:
    users = [m for m in body.get("messages") or [] if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        return ""
    content = users[-1].get("content")
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return str(content)


# --- HTTP --------------------------------------------------------------------------------------------

class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # a burst of connections must not overflow the listen backlog
    stub: OpenAIStub


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
    disable_nagle_algorithm = True  # headers and body go out at once, not 40 ms apart (delayed ACK)
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
        return

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        stub = self.server.stub
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._json(404, _error("not found"))
        length = int(self.headers.get("Content-Length") or 0)
        if length > stub.max_body_bytes:
            self.close_connection = True
            return self._json(413, _error("request body too large"))
        try:
            body = json.loads(self.rfile.read(length))
        except ValueError:
            return self._json(400, _error("request body is not JSON"))
        record = stub._admit(body, self.headers.get("Authorization"))
        if record is None:
            return self._json(503, _error("stub request limit reached"))
        stub._wait(stub.delay_s)
        self._answer(record.outcome, body)

    def _answer(self, outcome: str, body: dict[str, Any]) -> None:
        stub = self.server.stub
        if outcome == "ok":
            return self._json(200, completion(body, stub.reply(body)) if stub.reply else echo(body))
        if outcome == "429":
            headers = {} if stub.retry_after is None else {"Retry-After": f"{stub.retry_after:g}"}
            return self._json(429, _error("rate limited"), headers)
        if outcome in ("500", "503"):
            return self._json(int(outcome), _error("server error"))
        if outcome == "400":  # like providers that echo the credential they rejected
            return self._json(400, _error(f"invalid request; key provided: {self.headers.get('Authorization')}"))
        if outcome == "timeout":
            stub._wait(stub.hang_s)
            return self._json(200, echo(body))
        if outcome == "reset":  # drop the connection without a reply (linger 0: the close sends RST)
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return None
        if outcome == "malformed":
            return self._send(200, b'{"id": "chatcmpl-stub", "choices": [{"index": 0, "mess')
        if outcome == "empty":
            return self._json(200, {**echo(body), "choices": []})
        if outcome == "content_filter":
            return self._json(200, completion(body, content=None, finish_reason="content_filter"))
        return self._json(200, completion(body, content=None, refusal="I can't help with that."))

    def _json(self, status: int, obj: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode("utf-8"), headers)

    def _send(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout fault)
            self.close_connection = True


def echo(body: dict[str, Any]) -> dict[str, Any]:
    """The normal answer: `echo: <last user text>`, cut at `max_tokens` words (then finish_reason "length")."""
    words = f"echo: {last_user_text(body)}".split(" ")
    limit = body.get("max_tokens") or len(words)
    return completion(body, " ".join(words[:limit]), "length" if len(words) > limit else "stop")


def completion(body: dict[str, Any], content: str | None, finish_reason: str = "stop",
               refusal: str | None = None) -> dict[str, Any]:
    """A chat.completion object with token usage."""
    prompt_tokens = len(json.dumps(body.get("messages"))) // 4
    completion_tokens = len(content.split()) if content else 0
    message = {"role": "assistant", "content": content, "refusal": refusal}
    return {"id": "chatcmpl-stub", "object": "chat.completion", "created": 0, "model": body.get("model", ""),
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


def _error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "stub_error"}}


# --- in a child process --------------------------------------------------------------------------------

@contextmanager
def serve_in_subprocess(delay_s: float = 0.0, lifetime_s: float = 300.0) -> Iterator[str]:
    """Run the stub in a child process for as long as the block lasts; yields its base URL."""
    command = [sys.executable, __file__, f"--delay-s={delay_s}", f"--lifetime-s={lifetime_s}"]
    child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        base_url = child.stdout.readline().strip()
        if not base_url.startswith("http://127.0.0.1:"):
            raise RuntimeError("the stub server did not start")
        yield base_url
    finally:
        child.stdin.close()  # the child stops when its stdin closes
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def main(argv: list[str] | None = None) -> int:
    """Serve, print the base URL, and stop when stdin closes or the lifetime is over."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-s", type=float, default=0.0)
    parser.add_argument("--lifetime-s", type=float, default=300.0)
    args = parser.parse_args(argv)
    with OpenAIStub(delay_s=args.delay_s, lifetime_s=args.lifetime_s) as stub:
        threading.Thread(target=lambda: (sys.stdin.read(), stub.stop()), daemon=True).start()
        print(stub.base_url, flush=True)
        stub._stopping.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
