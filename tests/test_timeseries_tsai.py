"""tsai backbones (the optional ``tsai`` extra): the adapter's contract with a fake ``tsai`` package (always run),
and real tsai architectures where tsai is installed (``.ci/run``'s separate tsai environment)."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from cl_domains.core.errors import UserError
from cl_domains.timeseries import TSEncoder, tsai_backbone
from cl_domains.timeseries.networks import TS2VecNet
from cl_domains.timeseries.ts2vec import ts2vec_loss

FAKE = {
    "__init__.py": "",
    "models/__init__.py": "",
    # per-timestamp features under `backbone` (like tsai's *Plus models), a pooling head
    "models/FakeConv.py": """
        from torch import nn
        class FakeConv(nn.Module):
            def __init__(self, c_in, c_out, nf=6):
                super().__init__()
                self.backbone = nn.Sequential(nn.Conv1d(c_in, nf, 3, padding=1), nn.BatchNorm1d(nf), nn.ReLU())
                self.head = nn.Sequential(nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(nf, c_out))
            def forward(self, x):
                return self.head(self.backbone(x))
    """,
    # features that pool time away: not per-timestamp
    "models/FakePool.py": """
        from torch import nn
        class FakePool(nn.Module):
            def __init__(self, c_in, c_out):
                super().__init__()
                self.backbone = nn.Sequential(nn.Conv1d(c_in, 4, 3, padding=1), nn.AdaptiveAvgPool1d(1))
    """,
    # no feature extractor known
    "models/FakeFlat.py": """
        from torch import nn
        class FakeFlat(nn.Module):
            def __init__(self, c_in, c_out):
                super().__init__()
                self.fc = nn.Linear(c_in, c_out)
    """,
    # a module whose import fails the way torchvision does beside the CPU torch
    "models/FakeBroken.py": "raise RuntimeError('operator torchvision::nms does not exist')",
}


@pytest.fixture
def fake_tsai(tmp_path, monkeypatch):
    for rel, src in FAKE.items():
        path = tmp_path / "tsai" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(src))
    for name in [m for m in sys.modules if m == "tsai" or m.startswith("tsai.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m == "tsai" or m.startswith("tsai.")]:
        del sys.modules[name]  # monkeypatch then restores a real tsai, if one was imported


def tsai_net(arch, input_dims=2, out=5, hidden=3, **kw):
    return TS2VecNet(input_dims, out, hidden=hidden, backbone={"name": "tsai", "arch": arch, "kwargs": kw})


# ------------------------------------------------------------------ without tsai
def test_missing_tsai_names_the_key_and_the_extra(monkeypatch):
    monkeypatch.setattr(tsai_backbone, "_installed", lambda: False)
    with pytest.raises(UserError, match=r"model\.backbone.*InceptionTime.*pip install 'cl-domains\[tsai\]'"):
        tsai_net("InceptionTime")


def test_default_backbone_and_recipe_key():
    from cl_domains.core.recipe import load_recipe
    from cl_domains.timeseries.networks import DilatedConvEncoder

    r = load_recipe("recipes/autotcl_ucr.yaml", "quick")
    assert r.model.backbone.name == "ts2vec" and isinstance(TS2VecNet(1).features, DilatedConvEncoder)
    r = load_recipe("recipes/autotcl_ucr.yaml", "quick", ["model.backbone={name: tsai, arch: FCN, kwargs: {}}"])
    assert (r.model.backbone.arch, r.model.backbone.kwargs) == ("FCN", {})
    with pytest.raises(UserError, match=r"model\.backbone.*arch is required"):
        load_recipe("recipes/autotcl_ucr.yaml", "quick", ["model.backbone.name=tsai"])


def test_patchtst_is_refused_with_the_reason():
    with pytest.raises(UserError, match=r"'PatchTST'.*per patch.*per timestamp"):
        tsai_net("PatchTST")


def test_adapter_shapes_nan_padding_and_export(fake_tsai, tmp_path):
    torch.manual_seed(0)
    net = tsai_net("FakeConv", nf=6)
    assert net.features.proj.in_channels == 6 and net.features.proj.out_channels == 5
    x = torch.randn(4, 11, 2)
    x[1, 7:] = float("nan")  # a shorter series, NaN-padded at the end
    for t in (2, 11):  # random crops have any length
        assert net(x[:, :t]).shape == (4, t, 5)
    net.eval()
    assert torch.isfinite(net(x)).all()
    assert torch.allclose(net(x, last=True)[:, 0], net(x)[:, -1], atol=1e-6)
    loss = ts2vec_loss(net.train(), x.nan_to_num(), torch.Generator().manual_seed(1))
    loss.backward()
    assert torch.isfinite(loss) and net.features.body[0][0].weight.grad.abs().sum() > 0
    # an exported tsai-backbone encoder (what TimeseriesTask.export writes) loads through TSEncoder
    from cl_domains.core.recipe import load_recipe
    from cl_domains.timeseries.encoder import write_encoder

    d = tmp_path / "model"
    config = dict(
        input_dims=2, output_dims=5, hidden=3, backbone={"name": "tsai", "arch": "FakeConv", "kwargs": {"nf": 6}}
    )
    write_encoder(d, load_recipe("recipes/autotcl_ucr.yaml", "quick"), net.eval(), config)
    got = TSEncoder.load(d).transform(x.numpy())
    assert got.shape == (4, 5) and np.isfinite(got).all()


@pytest.mark.parametrize(
    "arch,kwargs,match",
    [
        ("FakePool", {}, r"'FakePool'.*maps \[2, 3, 13\] to \[2, 4, 1\], not one vector per timestamp"),
        ("FakeFlat", {}, r"'FakeFlat': no known feature extractor"),
        ("FakeBroken", {}, r"'FakeBroken': importing tsai\.models\.FakeBroken failed.*torchvision"),
        ("NoSuchArch", {}, r"'NoSuchArch' is not a tsai model"),
        ("FakeConv", {"depth": 3}, r"model\.backbone\.kwargs.*FakeConv.*depth"),
    ],
)
def test_adapter_errors(fake_tsai, arch, kwargs, match):
    with pytest.raises(UserError, match=match):
        tsai_net(arch, **kwargs)


# ------------------------------------------------------------------ with tsai (separate environment)
@pytest.fixture(scope="module")
def tsai():
    """tsai lives in its own environment (scripts/test sets CL_DOMAINS_REQUIRE_TSAI=1 there): in that
    environment a failed import fails; in the main one (no tsai installed) these tests skip."""
    try:
        import tsai
    except Exception as exc:  # ImportError, or an error raised while tsai imports its dependencies
        if os.environ.get("CL_DOMAINS_REQUIRE_TSAI") == "1":
            pytest.fail(
                f"CL_DOMAINS_REQUIRE_TSAI=1 but tsai does not import: {type(exc).__name__}: {exc}", pytrace=False
            )
        pytest.skip(
            f"tsai is not importable here ({type(exc).__name__}): the optional extra's own environment runs these"
        )
    return tsai


def test_import_stays_light(tsai):
    out = subprocess.run(
        [sys.executable, "-c", "import sys, cl_domains.timeseries; print('tsai' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr


@pytest.mark.parametrize(
    "arch,kwargs,dim", [("InceptionTime", {"nf": 8}, 32), ("FCN", {}, 128), ("ResCNN", {}, 128), ("FCNPlus", {}, 128)]
)
def test_tsai_arch_gives_per_timestamp_representations(tsai, arch, kwargs, dim):
    net = tsai_net(arch, input_dims=3, out=16, hidden=8, **kwargs)
    assert net.features.proj.in_channels == dim
    x = torch.randn(4, 37, 3)
    x[2, 30:] = float("nan")
    for t in (5, 37):
        assert net(x[:, :t]).shape == (4, t, 16)
    assert net.eval()(x, last=True).shape == (4, 1, 16)


def test_ts2vec_steps_with_inceptiontime_backbone(tsai):
    torch.manual_seed(0)
    net = tsai_net("InceptionTime", input_dims=1, out=16, hidden=8, nf=8, depth=3)
    t = torch.linspace(0, 6.28, 40)
    x = torch.stack([torch.sin(t * (1 + i % 3)) + 0.1 * torch.randn(40) for i in range(8)]).unsqueeze(-1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):  # the same crops and masks every step: the objective is fixed, so it must go down
        loss = ts2vec_loss(net.train(), x, torch.Generator().manual_seed(3))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses)) and losses[-1] < 0.9 * losses[0], losses


@pytest.mark.integration
@pytest.mark.benchmark
def test_ucr_quick_with_inceptiontime_backbone(tsai, tmp_path, data_root):
    from cl_domains.core.recipe import load_recipe
    from cl_domains.core.train import train_recipe

    recipe = load_recipe("recipes/autotcl_ucr.yaml", "quick", ["model.backbone={name: tsai, arch: InceptionTime}"])
    run = train_recipe(recipe, out=tmp_path, data_root=data_root)
    m = run.metrics
    assert m["final"]["acc"] >= 0.93 and m["final"]["acc"] > m["before"]["acc"], m  # measured .974 (untrained .875)
    script = (
        f"from cl_domains.timeseries import TSEncoder, read_ucr; d = read_ucr({str(data_root / 'timeseries/ucr/Chinatown')!r});"
        f"print('SHAPE', TSEncoder.load({str(run.dir / 'model')!r}).transform(d.x_test).shape)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert out.returncode == 0 and "SHAPE (343, 64)" in out.stdout, out.stderr
