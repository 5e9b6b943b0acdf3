"""ONNX export: one graph from inputs to the embedding, equal to ``embed`` (max abs difference <= 1e-4 through
onnxruntime) for the sentence, time-series and seqrec encoders; clear errors without the extra or for another
format."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import numpy as np
import pytest

import cl_domains
from cl_domains.cli import main
from cl_domains.core.errors import UserError

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

TOL = 1e-4


def _fitted(domain: str, name: str, request, tmp_path):
    from conformance import sentences, seqrec, timeseries

    case = {"sentences": sentences, "seqrec": seqrec, "timeseries": timeseries}[domain].CASES[name]
    ctx = SimpleNamespace(tmp=tmp_path, **{f: request.getfixturevalue(f) for f in case.fixtures})
    est = case.make(ctx)
    if name == "autotcl":  # its forecasting encoder: the trend head (an FFT in torch, convolutions in the graph)
        est.set_params(model={**est.model, "trend": True, "max_kernel": 8})
    est = est.fit(*case.fit_args(ctx))
    assert name != "autotcl" or est.net_.trend is not None
    return est, case.inputs(ctx)


@pytest.mark.parametrize(
    "domain,name", [("sentences", "simcse"), ("timeseries", "ts2vec"), ("timeseries", "autotcl"), ("seqrec", "sasrec")]
)
def test_exported_graph_equals_embed(domain, name, request, tmp_path):
    from cl_domains.core.export import onnx_embed, onnx_runner

    est, x = _fitted(domain, name, request, tmp_path)
    saved = est.save(tmp_path / "model")
    f = tmp_path / "enc.onnx"
    assert main(["export", str(saved), "--format", "onnx", "--out", str(f)]) == 0
    loaded = cl_domains.load(saved)
    graph, runner = loaded.onnx_graph(), onnx_runner(f, threads=1)
    want = loaded.embed(x)
    got = onnx_embed(runner, graph, x)
    assert got.shape == want.shape and got.dtype == np.float32
    assert np.abs(got - want).max() <= TOL
    one = x[:1] if not isinstance(x, np.ndarray) else x[:1]
    assert np.abs(onnx_embed(runner, graph, one) - loaded.embed(one)).max() <= TOL  # another batch size
    if domain == "sentences":  # a longer sentence than the traced examples: the token axis is dynamic too
        long = ["a much longer sentence than the ones traced, with many more tokens in it than before"]
        assert np.abs(onnx_embed(runner, graph, long) - loaded.embed(long)).max() <= TOL


def test_export_without_the_extra_names_it(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "onnxruntime" else real(n, *a))
    from cl_domains.core.export import export_onnx

    with pytest.raises(UserError, match=r"onnxruntime.*pip install 'cl-domains\[export\]'"):
        export_onnx(tmp_path)
    assert main(["export", str(tmp_path)]) == 2


def test_unknown_format_and_missing_model_are_user_errors(tmp_path, capsys):
    assert main(["export", str(tmp_path), "--format", "tflite"]) == 2
    assert "the export formats are: onnx" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nothing")]) == 2
