"""Forward+backward time and peak memory of the core losses against references measured in the
same process: naive cross-entropy formulas and sentence-transformers' MultipleNegativesRankingLoss.

    python benchmarks/loss_speed.py [--out benchmarks/results/loss_speed.md] [--threads 1]

Writes a markdown table of median milliseconds and ratios (ours / reference of the same kind).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from cl_domains.core import losses as L

T = 0.05


def naive_one_sided(q, k):
    return F.cross_entropy(F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).T / T, torch.arange(len(q)))


def naive_nt_xent(q, k):
    z = F.normalize(torch.cat([q, k]), dim=-1)
    n = len(q)
    logits = (z @ z.T / T).fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(logits, target)


def st_mnrl():
    try:
        from sentence_transformers.util import cos_sim
    except ImportError:
        return None

    def loss(q, k):  # what MultipleNegativesRankingLoss computes: scale 20 = 1/0.05, cos_sim, CE
        return F.cross_entropy(cos_sim(q, k) / T, torch.arange(len(q)))

    return loss


def timed(fn, q, k, repeats: int) -> float:
    times = []
    for _ in range(repeats + 1):
        q1, k1 = q.detach().requires_grad_(), k.detach().requires_grad_()
        t = time.perf_counter()
        fn(q1, k1).backward()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times[1:])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results/loss_speed.md")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sizes", default="256x128,256x768,1024x128,1024x768,4096x128")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pairs = [
        ("info_nce (one-sided)", lambda q, k: L.info_nce(q, k, T), "naive CE", naive_one_sided),
        ("nt_xent (2N x 2N)", lambda q, k: L.nt_xent(q, k, T), "naive NT-Xent", naive_nt_xent),
    ]
    mnrl = st_mnrl()
    if mnrl is not None:
        pairs.append(("info_nce (one-sided)", lambda q, k: L.info_nce(q, k, T), "ST MNRL formula", mnrl))
    rows = ["| ours | reference | B x D | ours ms | ref ms | ratio |", "|---|---|---|---:|---:|---:|"]
    for size in args.sizes.split(","):
        b, d = map(int, size.split("x"))
        g = torch.Generator().manual_seed(0)
        q, k = torch.randn(b, d, generator=g), torch.randn(b, d, generator=g)
        repeats = 20 if b <= 1024 else 5
        for name, ours, ref_name, ref in pairs:
            t_ours, t_ref = timed(ours, q, k, repeats), timed(ref, q, k, repeats)
            rows.append(f"| {name} | {ref_name} | {size} | {t_ours:.1f} | {t_ref:.1f} | {t_ours / t_ref:.2f} |")
            print(rows[-1], flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    head = f"# Loss speed (fwd+bwd, median ms, torch {torch.__version__}, {args.threads} thread(s))\n\n"
    out.write_text(head + "\n".join(rows) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
