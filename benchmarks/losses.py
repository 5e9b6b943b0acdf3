"""Forward+backward time and peak memory of InfoNCE / NT-Xent / SupCon / DCL: our dense and
chunked paths against pytorch-metric-learning, lightly, sentence-transformers and a naive
reference, each point in a fresh process, all in one run.

    python -m venv .venv-bench && . .venv-bench/bin/activate
    pip install torch==2.13.0 && pip install -e ".[bench]"
    python benchmarks/losses.py [--out benchmarks/results/losses] [--threads 2] [--sizes 256,1024,4096,16384]

Writes ``<out>.csv`` (one row per loss x implementation x B x D), ``<out>.png`` and ``<out>.md``
(acceptance ratios). Before timing, every implementation's value is checked against ours in
float64 (relative 1e-5); a disagreeing peer is reported and left out.

The CPU here is shared, so timings are noisy: the implementations of one point run in turns
(one fresh process each, ``--rounds`` times) and ``ms`` is the minimum over
all timed calls (noise only ever adds time); ``ms_median`` is kept in the CSV.

Like is compared with like: ``infonce`` is one-sided (B queries against B keys: ST's
MultipleNegativesRankingLoss), ``ntxent`` is SimCLR's 2B x 2B form (pml NTXentLoss on the 2B
rows with item labels, lightly NTXentLoss), ``supcon`` has 2 views per class (pml SupConLoss),
``dcl`` is NT-Xent without the positive in the denominator (lightly DCLLoss). B is the number of
items (``ntxent``/``dcl`` score 2B rows). Points whose predicted memory exceeds ``--max-gib``
(pml's NT-Xent is cubic in B) are recorded as skipped with the reason.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

T = 0.1
LOSSES = ("infonce", "ntxent", "supcon", "dcl")


# ----------------------------------------------------------------------------- implementations
def _lightly(name: str):
    """lightly's NTXentLoss / DCLLoss. lightly 1.6 cannot be imported beside the CPU torch 2.13
    wheel (torchvision 0.28 from PyPI fails with "operator torchvision::nms does not exist"); its
    losses are pure torch and the only torchvision use on their import path is
    ``torchvision.ops.StochasticDepth`` in lightly.models.utils, so that import is stubbed."""
    try:
        import torchvision.ops  # noqa: F401
    except Exception:
        stub, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")
        ops.StochasticDepth = object
        stub.ops = ops
        sys.modules.update({"torchvision": stub, "torchvision.ops": ops})
        root = Path(importlib.util.find_spec("lightly").submodule_search_locations[0])
        for pkg in ("lightly.loss", "lightly.models", "lightly.models.modules"):  # skip the package __init__s
            mod = types.ModuleType(pkg)
            mod.__path__ = [str(root / pkg.split(".", 1)[1].replace(".", "/"))]
            sys.modules.setdefault(pkg, mod)
    if name == "ntxent":
        from lightly.loss.ntx_ent_loss import NTXentLoss

        return NTXentLoss(temperature=T)
    from lightly.loss.dcl_loss import DCLLoss

    return DCLLoss(temperature=T, weight_fn=None)


def _st_mnrl():
    import torch
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    loss = MultipleNegativesRankingLoss(torch.nn.Identity(), scale=1 / T)
    return lambda q, k: loss.compute_loss_from_embeddings([q, k], None)


def implementations(loss: str) -> dict:
    """name -> (factory returning fn(*inputs) -> scalar, bytes per logit predicted at peak)."""
    import torch
    import torch.nn.functional as F

    from cl_domains.core import losses as L

    def naive_infonce(q, k):
        return F.cross_entropy(F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).T / T, torch.arange(len(q)))

    def naive_ntxent(q, k, decoupled=False):
        z = F.normalize(torch.cat([q, k]), dim=-1)
        n = len(q)
        logits = z @ z.T / T
        other = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
        drop = torch.eye(2 * n, dtype=torch.bool)
        if decoupled:
            drop[torch.arange(2 * n), other] = True
        pos = logits[torch.arange(2 * n), other]
        return (torch.logsumexp(logits.masked_fill(drop, float("-inf")), -1) - pos).mean()

    def naive_supcon(z, labels):
        z = F.normalize(z, dim=-1)
        logits = z @ z.T / T
        self_mask = torch.eye(len(z), dtype=torch.bool)
        pos = (labels[:, None] == labels[None, :]) & ~self_mask
        log_prob = logits - torch.logsumexp(logits.masked_fill(self_mask, float("-inf")), -1, keepdim=True)
        return (-(log_prob * pos).sum(-1) / pos.sum(-1)).mean()

    def pml_ntxent():
        from pytorch_metric_learning.losses import NTXentLoss

        f = NTXentLoss(temperature=T)
        return lambda q, k: f(torch.cat([q, k]), torch.arange(len(q)).repeat(2))

    def pml_supcon():
        from pytorch_metric_learning.losses import SupConLoss

        return SupConLoss(temperature=T)

    # bytes per logit at the peak (fwd+bwd), measured here at B=4096 and rounded up; pml's NT-Xent
    # builds per-pair tensors: cubic in B.
    if loss == "infonce":
        return {
            "ours-dense": (lambda: lambda q, k: L.info_nce(q, k, T, chunked=False), 16),
            "ours-chunked": (lambda: lambda q, k: L.info_nce(q, k, T, chunked=True), 0),
            "st-mnrl": (_st_mnrl, 16),
            "naive": (lambda: naive_infonce, 16),
        }
    if loss in ("ntxent", "dcl"):
        dec = loss == "dcl"
        impls = {
            "ours-dense": (lambda: lambda q, k: L.nt_xent(q, k, T, decoupled=dec, chunked=False), 20),
            "ours-chunked": (lambda: lambda q, k: L.nt_xent(q, k, T, decoupled=dec, chunked=True), 0),
            "lightly": (lambda: _lightly(loss), 24),
            "naive": (lambda: lambda q, k: naive_ntxent(q, k, dec), 24),
        }
        if not dec:
            impls["pml"] = (pml_ntxent, "cubic")
        return impls
    return {
        "ours-dense": (lambda: lambda z, y: L.supcon(z, y, T, chunked=False), 20),
        "ours-chunked": (lambda: lambda z, y: L.supcon(z, y, T, chunked=True), 0),
        "pml": (pml_supcon, 200),
        "naive": (lambda: naive_supcon, 24),
    }


def inputs(loss: str, b: int, d: int, dtype):
    import torch

    g = torch.Generator().manual_seed(b + d)
    x = torch.randn(b, d, generator=g, dtype=dtype)
    if loss == "supcon":  # two views per class
        return [x], [torch.arange(b // 2).repeat(2)]
    return [x, x + 0.5 * torch.randn(b, d, generator=g, dtype=dtype)], []


def predicted_gib(loss: str, per_logit, b: int, d: int) -> float:
    rows = 2 * b if loss in ("ntxent", "dcl") else b
    if per_logit == "cubic":
        return 4 * rows**3 / 2**30
    return (per_logit * rows * rows + 16 * rows * d) / 2**30


# ----------------------------------------------------------------------------- one point
def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_bytes() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM"))


def worker(loss: str, impl: str, b: int, d: int, threads: int, repeats: int) -> dict:
    import contextlib
    import gc

    import torch

    torch.set_num_threads(threads)
    fn = implementations(loss)[impl][0]()
    floats, extra = inputs(loss, b, d, torch.float32)
    gc.collect()
    with contextlib.suppress(OSError):  # reset the peak-RSS counter, so the peak is that of the loss alone
        Path("/proc/self/clear_refs").write_text("5")
    base = _rss_bytes()
    times = []
    for _ in range(repeats + (1 if b <= 4096 else 0)):  # one warm-up call except at the largest sizes
        xs = [x.detach().requires_grad_() for x in floats]
        t = time.perf_counter()
        fn(*xs, *extra).backward()
        times.append((time.perf_counter() - t) * 1000)
        del xs
    return {"times": times[1:] if b <= 4096 else times, "peak_mib": (_peak_bytes() - base) / 2**20}


def paired_worker(loss: str, b: int, d: int, threads: int, rounds: int, impls: list[str]) -> dict:
    """One process, calls alternating between implementations (order rotated every round), so
    that load changes on a shared CPU hit all of them alike: ratios, not memory."""
    import torch

    torch.set_num_threads(threads)
    table = implementations(loss)
    fns = {name: table[name][0]() for name in impls}
    floats, extra = inputs(loss, b, d, torch.float32)
    times = {name: [] for name in impls}
    for r in range(rounds + 1):  # round 0 warms up
        for name in impls[r % len(impls) :] + impls[: r % len(impls)]:
            xs = [x.detach().requires_grad_() for x in floats]
            t = time.perf_counter()
            fns[name](*xs, *extra).backward()
            if r:
                times[name].append((time.perf_counter() - t) * 1000)
    return {name: min(ts) for name, ts in times.items()}


# ----------------------------------------------------------------------------- agreement
def agreement(losses) -> dict:
    """float64 values of every implementation at B=48, D=16, relative to ours-dense."""
    import torch

    out = {}
    for loss in losses:
        floats, extra = inputs(loss, 48, 16, torch.float64)
        ref = None
        for impl, (factory, _) in implementations(loss).items():
            try:
                value = float(factory()(*floats, *extra))
            except Exception as exc:  # an uninstallable peer is reported, not fatal
                out[(loss, impl)] = f"unavailable: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                continue
            ref = value if ref is None else ref
            rel = abs(value - ref) / abs(ref)
            out[(loss, impl)] = rel if rel <= 1e-5 else f"disagrees: {value:.10g} vs ours {ref:.10g}"
    return out


# ----------------------------------------------------------------------------- driver
def _num(text: str):
    return float(text) if text else ""


def write_csv(rows: list[dict], agree: dict, path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(
            f,
            fieldnames=[
                "loss",
                "impl",
                "B",
                "D",
                "ms",
                "ms_median",
                "peak_mib",
                "repeats",
                "status",
                "float64_rel_diff",
            ],
        )
        w.writeheader()
        for r in rows:
            a = agree.get((r["loss"], r["impl"]), "")
            w.writerow({**r, "float64_rel_diff": f"{a:.1e}" if isinstance(a, float) else ""})


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(LOSSES), figsize=(5 * len(LOSSES), 8))
    for col, loss in enumerate(LOSSES):
        for impl in sorted({r["impl"] for r in rows if r["loss"] == loss}):
            for d, style in ((768, "-"), (128, "--")):
                pts = sorted(
                    (r["B"], r["ms"], r["peak_mib"])
                    for r in rows
                    if r["loss"] == loss and r["impl"] == impl and r["D"] == d and r["status"] == "ok"
                )
                if not pts:
                    continue
                bs = [p[0] for p in pts]
                axes[0, col].plot(bs, [p[1] for p in pts], style, marker="o", label=f"{impl} D={d}")
                axes[1, col].plot(bs, [max(p[2], 0.1) for p in pts], style, marker="o", label=f"{impl} D={d}")
        axes[0, col].set_title(f"{loss}: fwd+bwd time")
        axes[1, col].set_title(f"{loss}: peak memory increase")
        axes[0, col].set_ylabel("ms (min of the timed calls)")
        axes[1, col].set_ylabel("MiB")
        for ax in axes[:, col]:
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("B")
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def summary(rows: list[dict], threads: int, paired: list[dict]) -> str:
    import torch

    ok = {(r["loss"], r["impl"], r["B"], r["D"]): r for r in rows if r["status"] == "ok"}
    lines = [
        f"# Loss benchmark (fwd+bwd, torch {torch.__version__}, {threads} threads)\n",
        "ms: minimum over the timed calls (see the module docstring).\n",
        "## Dense path against the fastest peer (speed-up = fastest peer ms / ours ms; >= 1 means ours is faster)\n",
        "| loss | B | D | ours-dense ms | fastest peer | peer ms | speed-up |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    for (loss, impl, b, d), r in sorted(ok.items()):
        if impl != "ours-dense" or b > 4096:
            continue
        peers = [
            (p["ms"], p["impl"])
            for (l2, i2, b2, d2), p in ok.items()
            if (l2, b2, d2) == (loss, b, d) and not i2.startswith("ours") and i2 != "naive"
        ]
        if peers:
            ms, name = min(peers)
            lines.append(f"| {loss} | {b} | {d} | {r['ms']:.1f} | {name} | {ms:.1f} | {ms / r['ms']:.2f} |")
    if paired:
        lines += [
            "",
            "## Dense path against the fastest peer, paired (one process, alternating calls, min ms)\n",
            "| loss | B | D | ours-dense ms | fastest peer | peer ms | speed-up |",
            "|---|---:|---:|---:|---|---:|---:|",
        ]
        for p in paired:
            peers = [(v, k) for k, v in p.items() if k not in ("loss", "B", "D", "ours-dense")]
            if peers and "ours-dense" in p:
                ms, name = min(peers)
                lines.append(
                    f"| {p['loss']} | {p['B']} | {p['D']} | {p['ours-dense']:.1f} | {name} | {ms:.1f} | "
                    f"{ms / p['ours-dense']:.2f} |"
                )
    lines += [
        "",
        "## Chunked against dense (same process layout, same run)\n",
        "| loss | B | D | dense ms | chunked ms | time ratio | dense MiB | chunked MiB | memory ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (loss, impl, b, d), r in sorted(ok.items()):
        dense = ok.get((loss, "ours-dense", b, d))
        if impl == "ours-chunked" and dense:
            lines.append(
                f"| {loss} | {b} | {d} | {dense['ms']:.0f} | {r['ms']:.0f} | {r['ms'] / dense['ms']:.2f} | "
                f"{dense['peak_mib']:.0f} | {r['peak_mib']:.0f} | {r['peak_mib'] / max(dense['peak_mib'], 1e-9):.3f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="benchmarks/results/losses")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", default="256,1024,4096,16384")
    ap.add_argument("--dims", default="768,128")
    ap.add_argument(
        "--peers-max-b",
        type=int,
        default=4096,
        help="time peers and the naive reference up to this B (the acceptance compares them at B <= 4096)",
    )
    ap.add_argument("--losses", default=",".join(LOSSES))
    ap.add_argument("--impls", default="", help="comma list to restrict implementations (default: all)")
    ap.add_argument("--max-gib", type=float, default=9.0, help="skip points predicted to need more memory")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per point")
    ap.add_argument("--rounds", type=int, default=1, help="fresh processes per point for B <= 4096 (min over all)")
    ap.add_argument("--keep", action="store_true", help="keep the points already in <out>.csv (resume a run)")
    ap.add_argument(
        "--paired-rounds",
        type=int,
        default=8,
        help="B <= 4096: also time ours-dense and the peers alternating in one process (0: off)",
    )
    ap.add_argument("--paired-worker", nargs=6, help=argparse.SUPPRESS)
    ap.add_argument("--skip-points", action="store_true", help="only the paired pass")
    ap.add_argument(
        "--worker", nargs=6, metavar=("LOSS", "IMPL", "B", "D", "THREADS", "REPEATS"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.paired_worker:
        loss, b, d, threads, rounds, impls = args.paired_worker
        print(json.dumps(paired_worker(loss, int(b), int(d), int(threads), int(rounds), impls.split(","))))
        return
    if args.worker:
        loss, impl, b, d, threads, repeats = args.worker
        print(json.dumps(worker(loss, impl, int(b), int(d), int(threads), int(repeats))))
        return

    losses = args.losses.split(",")
    only = set(filter(None, args.impls.split(",")))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    if args.keep and out.with_suffix(".csv").is_file():  # points measured by an earlier, interrupted run
        with open(out.with_suffix(".csv")) as f:
            for r in csv.DictReader(f):
                r.pop("float64_rel_diff", None)
                r.update(
                    B=int(r["B"]),
                    D=int(r["D"]),
                    ms=_num(r["ms"]),
                    ms_median=_num(r["ms_median"]),
                    peak_mib=_num(r["peak_mib"]),
                    repeats=int(r["repeats"]),
                )
                done[(r["loss"], r["impl"], r["B"], r["D"])] = r
    agree = agreement(losses)
    for (loss, impl), a in agree.items():
        print(f"float64 check {loss:8s} {impl:13s} {a if isinstance(a, str) else f'rel. diff {a:.1e}'}", flush=True)
    sizes, dims = [int(x) for x in args.sizes.split(",")], [int(x) for x in args.dims.split(",")]
    rows = [r for (_, _, b, d), r in done.items() if b not in sizes or d not in dims]  # kept as they are
    # PASSIVE: on a shared, oversubscribed CPU, spinning OpenMP threads fight for the cores and
    # turn a 1 ms call into 250 ms in some processes (measured here); sleeping waiters do not.
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(args.threads),
        "MKL_NUM_THREADS": str(args.threads),
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    for b in [] if args.skip_points else sizes:
        for d in dims:
            for loss in losses:
                point = {}
                for impl, (_, per_logit) in implementations(loss).items():
                    if (loss, impl, b, d) in done:
                        rows.append(done[(loss, impl, b, d)])
                        continue
                    if only and impl not in only:
                        continue
                    point[impl] = row = {
                        "loss": loss,
                        "impl": impl,
                        "B": b,
                        "D": d,
                        "ms": "",
                        "ms_median": "",
                        "peak_mib": "",
                        "repeats": 0,
                        "status": "ok",
                        "times": [],
                    }
                    check, gib = agree[(loss, impl)], predicted_gib(loss, per_logit, b, d)
                    if isinstance(check, str):
                        row["status"] = f"skipped: {check}"
                    elif b > args.peers_max_b and not impl.startswith("ours"):
                        row["status"] = f"skipped: B > --peers-max-b {args.peers_max_b}"
                    elif gib > args.max_gib:
                        row["status"] = f"skipped: predicted {gib:.0f} GiB > --max-gib {args.max_gib:g}"
                repeats = {256: 3, 1024: 2}.get(b, 1)
                for _ in range(args.rounds if b <= 4096 else 1):
                    for impl, row in point.items():
                        if row["status"] != "ok":
                            continue
                        cmd = [
                            sys.executable,
                            __file__,
                            "--worker",
                            loss,
                            impl,
                            str(b),
                            str(d),
                            str(args.threads),
                            str(repeats),
                        ]
                        try:
                            p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env)
                        except subprocess.TimeoutExpired:
                            row["status"] = f"skipped: over {args.timeout} s"
                            continue
                        if p.returncode != 0:
                            row["status"] = (
                                f"error: {(p.stderr.strip().splitlines() or ['exit ' + str(p.returncode)])[-1][:200]}"
                            )
                            continue
                        got = json.loads(p.stdout.strip().splitlines()[-1])
                        row["times"] += got["times"]
                        row["peak_mib"] = max(got["peak_mib"], row["peak_mib"] or 0.0)
                for row in point.values():
                    times = row.pop("times")
                    if row["status"] == "ok":
                        row.update(ms=min(times), ms_median=statistics.median(times), repeats=len(times))
                    rows.append(row)
                    shown = f"{row['ms']:.1f} ms {row['peak_mib']:.0f} MiB" if row["status"] == "ok" else row["status"]
                    print(f"{loss:8s} {row['impl']:13s} B={b:<6d} D={d:<4d} {shown}", flush=True)
                write_csv(rows, agree, out.with_suffix(".csv"))  # after every point: an interrupted run keeps its rows
    paired = []
    for b in (x for x in map(int, args.sizes.split(",")) if x <= min(4096, args.peers_max_b) and args.paired_rounds):
        for d in map(int, args.dims.split(",")):
            for loss in losses:
                names = [
                    i
                    for i, (_, per) in implementations(loss).items()
                    if i != "ours-chunked"
                    and i != "naive"
                    and not isinstance(agree[(loss, i)], str)
                    and predicted_gib(loss, per, b, d) <= args.max_gib
                ]
                cmd = [
                    sys.executable,
                    __file__,
                    "--paired-worker",
                    loss,
                    str(b),
                    str(d),
                    str(args.threads),
                    str(args.paired_rounds if b <= 1024 else max(2, args.paired_rounds // 2)),
                    ",".join(names),
                ]
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env)
                if p.returncode != 0:
                    print(f"paired {loss} B={b} D={d}: error {p.stderr.strip().splitlines()[-1:]}", flush=True)
                    continue
                got = json.loads(p.stdout.strip().splitlines()[-1])
                paired.append({"loss": loss, "B": b, "D": d, **got})
                print(
                    f"paired {loss:8s} B={b:<5d} D={d:<4d} " + " ".join(f"{k} {v:.1f}" for k, v in got.items()),
                    flush=True,
                )
    paired_file = out.with_name(out.name + "-paired.json")
    if paired:
        paired_file.write_text(json.dumps(paired, indent=1))
    elif paired_file.is_file():  # from an earlier --skip-points run
        paired = json.loads(paired_file.read_text())
    if args.skip_points:
        rows = list(done.values())
    plot(rows, out.with_suffix(".png"))
    out.with_suffix(".md").write_text(summary(rows, args.threads, paired))
    print(f"wrote {out}.csv, {out}.png, {out}.md")


if __name__ == "__main__":
    main()
