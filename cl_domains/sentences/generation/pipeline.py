"""MultiCSR stages 1 and 2 (Wang et al., NAACL 2024; the paper's equations were not available here,
so each step cites the official code that defines it): an LLM writes an entailment
and a contradiction of every seed sentence (stage 1), scores each (seed, generation) pair's
semantic similarity on 0-5 (stage 2), and self-curation keeps the triplets whose scores pass the
paper's thresholds (positive >= 3, negative <= 3, scores different: the official
``flan_filter.py --filter_type 15``), the higher-scored generation being the positive.

Both stages are cached as append-only JSONL in ``cache_dir`` (``stage1.jsonl``, ``stage2.jsonl``)
keyed by a hash of the seed, so an interrupted run resumes where it stopped and a finished one
costs a file read. Outputs that are empty, copy the seed or do not parse are retried with
sampling, then skipped (cached with the reason, so a rerun does not redo them), except empty
outputs: like prompts the backend cannot answer (endpoint down), they are *not* cached and are
retried by the next run. After ``max_failed_chunks`` consecutive chunks with no answer at all, or
past ``stage_deadline`` seconds, the stage stops early, keeping everything done; nothing here
raises on a generation failure.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import Field
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ...core.errors import UserError
from ...core.recipe import StrictModel
from ...core.runs import atomic_write_text, console
from .generators import Generator, GeneratorConfig, Messages

__all__ = [
    "GenerationConfig",
    "JsonlCache",
    "build_pairs",
    "curate",
    "parse_sentence",
    "parse_score",
    "entailment_prompt",
    "contradiction_prompt",
    "score_prompt",
    "PROMPT_VERSION",
]

PROMPT_VERSION = 1  # bump when prompts or parsing change: cached generations are then not reused

# Few-shot examples of the paper's generation prompts (official flan_generate_scoring.py, MNLI premises).
_ENTAIL_SHOTS = [
    (
        "One of our number will carry out your instructions minutely.",
        "A member of my team will execute your orders with immense precision.",
    ),
    ("How do you know? All this is their information again.", "This information belongs to them."),
]
_CONTRA_SHOTS = [
    (
        "One of our number will carry out your instructions minutely.",
        "We have no one free at the moment so you have to take action yourself.",
    ),
    ("How do you know? All this is their information again.", "They have no information at all."),
]
# Score examples are ours (the paper's scoring prompt is zero-shot); they pin the answer format.
_SCORE_SHOTS = [
    ("A dog runs in the park.", "A dog is running through a park.", "4.6"),
    ("A woman is slicing an onion.", "A man is driving a car.", "0.2"),
    ("Two kids play football.", "Children are playing a game outside.", "3.2"),
]


def _few_shot(system: str, shots: Sequence[tuple[str, str]], ask: Callable[[str], str], sentence: str) -> Messages:
    msgs = [{"role": "system", "content": system}]
    for src, tgt in shots:
        msgs += [{"role": "user", "content": ask(src)}, {"role": "assistant", "content": tgt}]
    return msgs + [{"role": "user", "content": ask(sentence)}]


def entailment_prompt(sentence: str) -> Messages:
    """Stage 1 positive: a sentence entailed by the seed (official flan_generate_scoring.py)."""
    return _few_shot(
        "Help me write a sentence that is entailed by a given sentence. Reply with the sentence only. "
        "Here are some examples:",
        _ENTAIL_SHOTS,
        lambda s: f"Write a sentence that is entailment with '{s}':",
        sentence,
    )


def contradiction_prompt(sentence: str) -> Messages:
    """Stage 1 hard negative: a sentence contradicting the seed (official flan_generate_scoring.py)."""
    return _few_shot(
        "Help me write a sentence that contradicts a given sentence. Reply with the sentence only. "
        "Here are some examples:",
        _CONTRA_SHOTS,
        lambda s: f"Write a sentence that is negative with '{s}':",
        sentence,
    )


def score_prompt(a: str, b: str) -> Messages:
    """Stage 2 self-scoring: a pair's semantic similarity on 0.0-5.0 (official flan_generate_scoring.py)."""
    ask = "Scoring the semantic similarity of the following sentences between 0.0 and 5.0: (a) {} (b) {}"
    msgs = [{"role": "system", "content": "You rate sentence similarity. Reply with one number between 0.0 and 5.0."}]
    for x, y, s in _SCORE_SHOTS:
        msgs += [{"role": "user", "content": ask.format(x, y)}, {"role": "assistant", "content": s}]
    return msgs + [{"role": "user", "content": ask.format(a, b)}]


_LABEL = re.compile(r"^(?:sentence|answer|output|entailment|contradiction|negative|hypothesis)\s*:\s*", re.I)
_QUOTES = "'\"`‘’“”"
_WORD = re.compile(r"\w+")
_SCORE = re.compile(r"^\s*(?:score\s*[:=]?\s*)?(\d+(?:\.\d+)?)(?!\d)", re.I)


def _norm(s: str) -> str:
    return " ".join(_WORD.findall(s.lower()))


def parse_sentence(output: str, seed: str, min_words: int = 3, max_words: int = 64) -> tuple[str | None, str]:
    """``(sentence, "")`` or ``(None, reason)``: the first non-empty line, without a leading label
    or surrounding quotes; ``empty``, ``copy`` (the seed again) or ``malformed`` (too short/long)."""
    line = next((ln.strip() for ln in output.splitlines() if ln.strip()), "")
    line = _LABEL.sub("", line).strip().strip(_QUOTES).strip()
    if not line:
        return None, "empty"
    if _norm(line) == _norm(seed):
        return None, "copy"
    if not min_words <= len(_WORD.findall(line)) <= max_words:
        return None, "malformed"
    return line, ""


def parse_score(output: str) -> tuple[float | None, str]:
    """``(score, "")`` for an answer that starts with a number in [0, 5], else ``(None, reason)``."""
    if not output.strip():
        return None, "empty"
    m = _SCORE.match(output)
    if not m or float(m.group(1)) > 5.0:
        return None, "malformed"
    return float(m.group(1)), ""


def curate(
    seed: str,
    gen_a: str,
    gen_b: str,
    score_a: float,
    score_b: float,
    positive_line: float = 3.0,
    negative_line: float = 3.0,
    score_gap: float = 0.0,
) -> tuple[str, str, str] | None:
    """Self-curation (stage 2; official flan_filter.py, filter type 15): orient the pair so the
    higher-scored generation is the positive, keep ``(seed, positive, negative)`` iff
    ``pos >= positive_line``, ``neg <= negative_line`` and ``pos - neg > score_gap`` (0: the scores
    must differ, the official ``--similarity_gap 1``)."""
    (pos, s_pos), (neg, s_neg) = sorted([(gen_a, score_a), (gen_b, score_b)], key=lambda x: -x[1])
    if s_pos >= positive_line and s_neg <= negative_line and s_pos - s_neg > score_gap:
        return seed, pos, neg
    return None


class JsonlCache:
    """Append-only JSONL records keyed by ``record["key"]``; every append is flushed and fsynced.
    A torn last line (a crash mid-write) is ignored on load and never glued to the next record."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.records: dict[str, dict] = {}
        self.torn = 0
        if self.path.is_file():
            raw = self.path.read_bytes()
            for line in raw.decode("utf-8", errors="replace").splitlines():
                try:
                    rec = json.loads(line)
                    self.records[rec["key"]] = rec
                except (ValueError, KeyError, TypeError):
                    self.torn += 1
            if raw and not raw.endswith(b"\n"):
                with open(self.path, "ab") as f:
                    f.write(b"\n")

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def add(self, records: Sequence[dict]) -> None:
        if not records:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            for rec in records:
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
                self.records[rec["key"]] = rec
            f.flush()
            os.fsync(f.fileno())


class GenerationConfig(StrictModel):
    """Recipe section ``method.generation``: stages 1-2 of MultiCSR."""

    generator: GeneratorConfig = Field(default_factory=GeneratorConfig)
    seeds: str | None = Field(
        None,
        description="seed sentences: '<dataset>/<file>' or a path (corpus .txt/.gz or "
        "triplets CSV, whose sent0 premises are used); null: the premises of data.train",
    )
    max_seeds: int | None = Field(None, gt=0, description="the first N distinct seeds (null: all)")
    cache_dir: str | None = Field(None, description="JSONL cache folder (default: the user cache, per generator)")
    max_new_tokens: int = Field(48, gt=0, description="stage 1 generation length")
    score_tokens: int = Field(8, gt=0, description="stage 2 answer length")
    temperature: float = Field(0.0, ge=0, description="first attempt (0: greedy, as the paper)")
    retry_temperature: float = Field(0.8, gt=0, description="sampling temperature of the retries")
    attempts: int = Field(3, gt=0, description="tries per seed before an unusable output is skipped")
    chunk: int = Field(16, gt=0, description="seeds per generator call (and per cache flush)")
    max_failed_chunks: int = Field(3, gt=0, description="stop a stage after this many chunks in a row got no answer")
    stage_deadline: float | None = Field(
        None,
        gt=0,
        description="stop a stage after this many seconds (null: no limit); what is done is cached, a rerun continues",
    )
    positive_line: float = Field(3.0, description="self-curation: min score of the positive (paper: 3.0)")
    negative_line: float = Field(3.0, description="self-curation: max score of the hard negative (paper: 3.0)")
    score_gap: float = Field(0.0, ge=0, description="self-curation: positive - negative score must exceed this")

    def resolve_cache_dir(self) -> Path:
        if self.cache_dir:
            return Path(self.cache_dir)
        from platformdirs import user_cache_dir

        key = hashlib.sha1(f"{self.generator.fingerprint()}|v{PROMPT_VERSION}".encode()).hexdigest()[:12]
        return Path(user_cache_dir("cl-domains")) / "multicsr" / key


def seed_key(sentence: str) -> str:
    return hashlib.sha1(sentence.encode("utf-8")).hexdigest()[:16]


class _Stage:
    """Runs ``prompts(item) -> [Messages]`` / ``parse(item, outputs) -> (record | None, reason)`` over
    the items not yet in ``cache``, with retries, skips, counts and a progress bar."""

    def __init__(
        self,
        name: str,
        cache: JsonlCache,
        cfg: GenerationConfig,
        get_generator: Callable[[], Generator],
        prompts: Callable[[dict], list[Messages]],
        parse: Callable[[dict, list[str]], tuple[dict | None, str]],
        max_new_tokens: int,
    ):
        self.name, self.cache, self.cfg, self.get_generator = name, cache, cfg, get_generator
        self.prompts, self.parse, self.max_new_tokens = prompts, parse, max_new_tokens
        self.counts: Counter = Counter()

    def _call(self, prompts: list[Messages], attempt: int) -> list[str | None]:
        temperature = self.cfg.temperature if attempt == 0 else self.cfg.retry_temperature
        try:
            gen = self.get_generator()
            out = gen.generate(prompts, max_new_tokens=self.max_new_tokens, temperature=temperature, seed=attempt)
            if len(out) != len(prompts):
                raise RuntimeError(f"generator returned {len(out)} outputs for {len(prompts)} prompts")
            return out
        except UserError:
            raise  # a configuration problem (model not installed, bad URL): stop with its message
        except Exception as exc:  # noqa: BLE001 - a failing backend must not end a long run
            self.last_error = f"{type(exc).__name__}: {exc}"
            return [None] * len(prompts)

    def _chunk(self, items: list[dict]) -> bool:
        """Process one chunk; False when the backend answered none of its prompts."""
        pending, reasons, answered = items, {}, False
        for attempt in range(self.cfg.attempts):
            if attempt:
                self.counts["retries"] += len(pending)
            per_item = [self.prompts(it) for it in pending]
            flat = self._call([p for ps in per_item for p in ps], attempt)
            done, retry, pos = [], [], 0
            for it, ps in zip(pending, per_item, strict=False):
                outs = flat[pos : pos + len(ps)]
                pos += len(ps)
                if any(o is None for o in outs):
                    self.counts["endpoint_failures"] += 1  # not cached: the next run tries again
                    continue
                answered = True
                record, reason = self.parse(it, outs)
                if record is not None:
                    done.append({"key": it["key"], **record})
                else:
                    reasons[it["key"]] = reason
                    retry.append(it)
            self.cache.add(done)
            self.counts["ok"] += len(done)
            pending = retry
            if not pending:
                break
        skipped = [{"key": it["key"], "skipped": reasons[it["key"]]} for it in pending]
        final = [rec for rec in skipped if not rec["skipped"].endswith("empty")]  # empty: maybe a server fault
        self.cache.add(final)
        for rec in final:
            self.counts[f"skipped_{rec['skipped']}"] += 1
        self.counts["empty_not_cached"] += len(skipped) - len(final)
        return answered

    def run(self, items: list[dict]) -> Counter:
        todo = [it for it in items if it["key"] not in self.cache]
        self.counts["cached"] = len(items) - len(todo)
        self.last_error = ""
        if not todo:
            return self.counts
        cols = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        failed_in_row, t0 = 0, time.time()
        end = time.monotonic() + self.cfg.stage_deadline if self.cfg.stage_deadline else None
        gen = self.get_generator()
        if hasattr(gen, "deadline"):
            gen.deadline = end  # no request outlives the stage
        failures_before = Counter(getattr(gen, "failures", {}))
        with Progress(*cols, console=console, disable=not console.is_terminal) as bar:
            task = bar.add_task(f"MultiCSR {self.name}", total=len(items), completed=self.counts["cached"])
            for start in range(0, len(todo), self.cfg.chunk):
                if end is not None and time.monotonic() >= end:
                    self.counts["not_attempted"] += len(todo) - start
                    console.print(
                        f"MultiCSR {self.name}: stage deadline ({self.cfg.stage_deadline:g} s) reached; "
                        f"{len(todo) - start} seeds not attempted. Cached work is kept: run again to continue.",
                        markup=False,
                        highlight=False,
                    )
                    break
                chunk = todo[start : start + self.cfg.chunk]
                failed_in_row = 0 if self._chunk(chunk) else failed_in_row + 1
                bar.update(task, advance=len(chunk))
                if not console.is_terminal:
                    console.print(
                        f"MultiCSR {self.name}: {start + len(chunk)}/{len(todo)} new seeds "
                        f"[{time.time() - t0:.0f}s] {dict(self.counts)}",
                        markup=False,
                        highlight=False,
                    )
                if failed_in_row >= self.cfg.max_failed_chunks:
                    left = len(todo) - start - len(chunk)
                    self.counts["not_attempted"] += left
                    console.print(
                        f"MultiCSR {self.name}: stopping early, the generator answered none of the last "
                        f"{failed_in_row} chunks ({self.last_error or self.get_generator().last_error}); "
                        f"{left} seeds not attempted. Cached work is kept: run again to continue.",
                        markup=False,
                        highlight=False,
                    )
                    break
        if hasattr(gen, "deadline"):
            gen.deadline = None
        for kind, n in (Counter(getattr(gen, "failures", {})) - failures_before).items():
            self.counts[f"request_failures_{kind}"] += n
        return self.counts


def _stage1_parse(item: dict, outs: list[str]) -> tuple[dict | None, str]:
    ent, why_e = parse_sentence(outs[0], item["seed"])
    con, why_c = parse_sentence(outs[1], item["seed"])
    if ent is None or con is None:
        return None, f"entailment_{why_e}" if ent is None else f"contradiction_{why_c}"
    if _norm(ent) == _norm(con):
        return None, "same_generations"
    return {"seed": item["seed"], "entailment": ent, "contradiction": con}, ""


def _stage2_parse(item: dict, outs: list[str]) -> tuple[dict | None, str]:
    s_e, why_e = parse_score(outs[0])
    s_c, why_c = parse_score(outs[1])
    if s_e is None or s_c is None:
        return None, f"score_{why_e or why_c}"
    return {"entailment_score": s_e, "contradiction_score": s_c}, ""


def build_pairs(
    seeds: Sequence[str], cfg: GenerationConfig, generator: Generator | None = None, cache_dir: str | Path | None = None
) -> tuple[list[tuple[str, str, str]], dict]:
    """Stages 1-2 over ``seeds`` (the first ``cfg.max_seeds`` distinct ones): returns the curated
    ``(seed, positive, hard negative)`` triplets and the counts; also writes ``pairs.csv``
    (SimCSE's supervised layout) and ``stats.json`` to the cache folder. The generator (built
    from ``cfg.generator`` unless given) is only loaded if some seed is not cached yet."""
    cache = Path(cache_dir) if cache_dir else cfg.resolve_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    meta = {"generator": cfg.generator.fingerprint(), "prompt_version": PROMPT_VERSION}
    meta_file = cache / "meta.json"
    if meta_file.is_file() and json.loads(meta_file.read_text()) != meta:
        raise UserError(
            f"MultiCSR cache {cache} holds generations of {meta_file.read_text().strip()}, not {meta}; "
            "set method.generation.cache_dir to another folder (the cached work is left untouched)."
        )
    atomic_write_text(meta_file, json.dumps(meta))

    distinct = list(dict.fromkeys(s.strip() for s in seeds if s.strip()))[: cfg.max_seeds]
    built: list[Generator] = [generator] if generator is not None else []

    def get_generator() -> Generator:
        if not built:
            built.append(cfg.generator.build())
        return built[0]

    t0 = time.time()
    c1 = JsonlCache(cache / "stage1.jsonl")
    items = [{"key": seed_key(s), "seed": s} for s in distinct]
    stage1 = _Stage(
        "stage 1 (generate)",
        c1,
        cfg,
        get_generator,
        lambda it: [entailment_prompt(it["seed"]), contradiction_prompt(it["seed"])],
        _stage1_parse,
        cfg.max_new_tokens,
    ).run(items)
    generated = [c1.records[it["key"]] for it in items if it["key"] in c1 and "skipped" not in c1.records[it["key"]]]

    c2 = JsonlCache(cache / "stage2.jsonl")
    items2 = [{"key": r["key"], **r} for r in generated]
    stage2 = _Stage(
        "stage 2 (score)",
        c2,
        cfg,
        get_generator,
        lambda it: [score_prompt(it["seed"], it["entailment"]), score_prompt(it["seed"], it["contradiction"])],
        _stage2_parse,
        cfg.score_tokens,
    ).run(items2)

    triplets = []
    for r in generated:
        s = c2.records.get(r["key"])
        if s is None or "skipped" in s:
            continue
        t = curate(
            r["seed"],
            r["entailment"],
            r["contradiction"],
            s["entailment_score"],
            s["contradiction_score"],
            cfg.positive_line,
            cfg.negative_line,
            cfg.score_gap,
        )
        if t is not None:
            triplets.append(t)
    skipped = Counter(
        c.records[it["key"]]["skipped"]
        for c, its in ((c1, items), (c2, items2))
        for it in its
        if "skipped" in c.records.get(it["key"], {})
    )
    stats = {
        "seeds": len(distinct),
        "stage1": dict(stage1),
        "stage2": dict(stage2),
        "skipped_in_cache": dict(skipped),
        "scored": sum(1 for r in generated if r["key"] in c2 and "skipped" not in c2.records[r["key"]]),
        "kept": len(triplets),
        "torn_cache_lines": c1.torn + c2.torn,
        "seconds": round(time.time() - t0, 1),
        "generator_loaded": bool(built) and getattr(built[0], "loaded", True),
    }
    _write_pairs(cache / "pairs.csv", triplets)
    atomic_write_text(cache / "stats.json", json.dumps(stats, indent=2))
    console.print(
        f"MultiCSR stages 1-2 ({cache}): {stats['seeds']} seeds -> {len(generated)} generated -> "
        f"{stats['scored']} scored -> {len(triplets)} kept by self-curation [{stats['seconds']}s]; "
        f"stage 1 {dict(stage1)}; stage 2 {dict(stage2)}",
        markup=False,
        highlight=False,
    )
    return triplets, stats


def _write_pairs(path: Path, triplets: list[tuple[str, str, str]]) -> None:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["sent0", "sent1", "hard_neg"])
    w.writerows(triplets)
    atomic_write_text(path, buf.getvalue())
