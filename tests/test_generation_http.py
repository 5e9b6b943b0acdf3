"""MultiCSR's HTTP generator against a misbehaving local server (127.0.0.1): a server that trickles
bytes, answers 500, malformed JSON or empty content. The stage ends within its deadline, counts
each failure, caches nothing false, and a rerun against the healthy server finishes the work."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cl_domains.sentences.generation import GenerationConfig, build_pairs
from cl_domains.sentences.generation.generators import GeneratorConfig

SEEDS = [
    "Two children are swimming in a lake.",
    "A man is playing a guitar on stage.",
    "The old bridge was closed for repairs.",
]


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send(self, code, body: bytes):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        mode = self.server.mode
        self.server.hits += 1
        if mode == "trickle":  # valid headers, then one byte every 0.2 s: never a whole body
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                for _ in range(150):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass
            return
        if mode == "500":
            return self._send(500, b'{"error": "boom"}')
        if mode == "malformed":
            return self._send(200, b'{"choices": [{"message": ')
        ask = payload["messages"][-1]["content"]
        if mode == "empty":
            text = ""
        elif "entailment with" in ask:
            text = "This is a faithful paraphrase of it."
        elif "negative with" in ask:
            text = "Nothing of the kind ever happened there."
        else:
            text = "4.5" if "paraphrase" in ask else "1.0"
        self._send(200, json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode())


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.mode, srv.hits = "healthy", 0
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def config(srv, stage_deadline=4.0):
    gen = GeneratorConfig(
        kind="openai",
        model="fake",
        base_url=f"http://127.0.0.1:{srv.server_port}/v1",
        timeout=0.5,
        request_deadline=1.0,
        retries=2,
        backoff=0.05,
        concurrency=2,
    )
    return GenerationConfig(generator=gen, chunk=2, attempts=2, stage_deadline=stage_deadline)


@pytest.mark.parametrize(
    "mode, failure", [("trickle", "timeout"), ("500", "http_500"), ("malformed", "malformed"), ("empty", "empty")]
)
def test_a_misbehaving_server_costs_a_bounded_time_and_a_rerun_finishes(server, tmp_path, mode, failure):
    cfg = config(server)
    server.mode = mode
    t = time.monotonic()
    triplets, stats = build_pairs(SEEDS, cfg, cache_dir=tmp_path)
    took = time.monotonic() - t
    assert took < cfg.stage_deadline + 2, f"{took:.1f}s"  # stage 2 has nothing to do: stage 1 got no sentence
    s1 = stats["stage1"]
    assert triplets == [] and s1.get("ok", 0) == 0 and s1[f"request_failures_{failure}"] > 0, s1
    assert not any(k.startswith("skipped_") for k in s1), s1  # nothing cached as final
    server.mode = "healthy"
    hits = server.hits
    triplets, stats = build_pairs(SEEDS, cfg, cache_dir=tmp_path)
    assert server.hits > hits and stats["stage1"]["ok"] == 3 and len(triplets) == 3, stats


def test_the_stage_deadline_bounds_a_slow_server(server, tmp_path):
    cfg = config(server, stage_deadline=1.5)
    cfg.generator.request_deadline = 30.0  # only the stage deadline can stop it
    server.mode = "trickle"
    t = time.monotonic()
    _, stats = build_pairs(SEEDS, cfg, cache_dir=tmp_path)
    assert time.monotonic() - t < 1.5 + 2
    assert stats["stage1"]["request_failures_timeout"] > 0
