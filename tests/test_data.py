"""Dataset cards, checksums and the sentence readers (row counts on the real files)."""

import io

import pytest

from cl_domains.core import data
from cl_domains.core.errors import UserError
from cl_domains.sentences import find_sts_tasks, read_corpus, read_sick, read_sts_year, read_stsb, read_triplets


def test_cards_are_complete():
    cards = data.cards()
    assert {"stsb", "unsup_corpus", "snli_triplets", "wiki1m", "nli_for_simcse"} <= set(cards)
    for c in cards.values():
        assert c.license and c.source and c.files
        assert c.fetch or c.how_to_get, c.name


@pytest.mark.parametrize("name", ["stsb", "unsup_corpus", "snli_triplets", "unsup_corpus_mixed_en"])
def test_shared_data_verifies(name, data_root):
    assert all(status == "ok" for _, _, status in data.verify(name, data_root))


def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("CL_DOMAINS_DATA", str(tmp_path / "env"))
    assert data.data_root(tmp_path / "arg")[0] == tmp_path / "arg"
    assert data.data_root()[0] == tmp_path / "env"
    monkeypatch.delenv("CL_DOMAINS_DATA")
    if (beside := data.checkout_data()) is not None:  # this checkout's ../shared/data
        assert data.data_root()[0] == beside
    monkeypatch.setattr(data, "checkout_data", lambda: None)
    assert "cl-domains" in str(data.data_root()[0])


def test_checkout_data_is_shared_data_beside_the_repo(tmp_path, monkeypatch):
    fake = tmp_path / "repo" / "cl_domains" / "core" / "data.py"
    fake.parent.mkdir(parents=True)
    monkeypatch.setattr(data, "__file__", str(fake))
    assert data.checkout_data() is None  # no pyproject.toml, no shared/data
    (tmp_path / "repo" / "pyproject.toml").write_text("")
    assert data.checkout_data() is None
    (tmp_path / "shared" / "data").mkdir(parents=True)
    assert data.checkout_data() == tmp_path / "shared" / "data"


def test_resolve_user_path_and_unknown(tmp_path):
    f = tmp_path / "mine.txt"
    f.write_text("a\n")
    assert data.resolve(str(f)) == f
    with pytest.raises(UserError, match="neither a file nor"):
        data.resolve("nosuch/file")
    with pytest.raises(UserError, match="has no file 'val'; its files: train, dev, test"):
        data.resolve("stsb/val", tmp_path)


def test_fetch_without_source_explains(tmp_path):
    with pytest.raises(UserError, match="no public download"):
        data.fetch("unsup_corpus", tmp_path)


@pytest.mark.parametrize("split,rows", [("train", 5749), ("dev", 1500), ("test", 1379)])
def test_stsb_row_counts_in_all_forms(split, rows, data_root):
    base = data_root / "sentences/stsb"
    for path in (base / f"original/sts-{split}.csv", base / f"senteval/sts-{split}.csv", base / f"sts-{split}.tsv"):
        pairs = read_stsb(path)
        assert len(pairs) == rows and len(pairs.s1) == len(pairs.s2) == rows
        assert pairs.scores.min() >= 0 and pairs.scores.max() <= 5


def test_corpus_and_triplets_row_counts(data_root):
    assert len(read_corpus(data_root / "sentences/unsup_corpus/unsup_sentences_mix.txt.gz")) == 51586
    assert len(read_corpus(data_root / "sentences/unsup_corpus/wiki1m_for_simcse.prefix11914.txt.gz")) == 11914
    assert len(read_triplets(data_root / "sentences/snli_devtest_triplets.csv")) == 5883


def test_senteval_sts_year_sick_and_discovery(tmp_path, data_root):
    year = tmp_path / "downstream/STS/STS12-en-test"
    year.mkdir(parents=True)
    (year / "STS.input.MSRpar.txt").write_text("a cat\ta feline\nsun\tmoon\nx\ty\n")
    (year / "STS.gs.MSRpar.txt").write_text("4.5\n1.0\n\n")  # the last pair has no gold score: skipped
    (year / "STS.input.OnWN.txt").write_text("red\tcrimson\n")
    (year / "STS.gs.OnWN.txt").write_text("3.8\n")
    t = read_sts_year(year)
    assert t.name == "STS12" and len(t) == 3 and t.scores.tolist() == [4.5, 1.0, 3.8]
    sick = tmp_path / "SICK/SICK_test_annotated.txt"
    sick.parent.mkdir()
    sick.write_text(
        "pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment\n1\ta\tb\t4.1\tENTAILMENT\n"
    )
    assert read_sick(sick).scores.tolist() == [4.1]
    (tmp_path / "sts-test.csv").write_text((data_root / "sentences/stsb/original/sts-test.csv").read_text())
    names = [t.name for t in find_sts_tasks(tmp_path)]
    assert names == ["STS12", "STSBenchmark", "SICKRelatedness"]


def test_reader_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "sts.csv"
    bad.write_text("main-captions\tMSRvid\t2012test\t0001\tfive\ta\tb\n")
    with pytest.raises(UserError, match=r"sts.csv, line 1: score 'five' is not a number"):
        read_stsb(bad)
    trip = tmp_path / "t.csv"
    trip.write_text("a,b\n1,2\n")
    with pytest.raises(UserError, match=r"must include \['hard_neg', 'sent0', 'sent1'\]"):
        read_triplets(trip)


def test_fetch_downloads_extracts_and_checks_sha256(tmp_path, monkeypatch, data_root):
    """The fetch path end to end on a local archive standing in for the official one (only http(s) URLs are
    fetched: the download reads the local file in their place)."""
    import hashlib
    import tarfile

    src = data_root / "sentences/stsb/original/sts-dev.csv"
    archive = tmp_path / "Stsbenchmark.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(src, arcname="stsbenchmark/sts-dev.csv")
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    card = data.DatasetCard(
        name="demo",
        domain="sentences",
        title="demo",
        license="x",
        source="x",
        files={"dev": data.DataFile(path="sentences/demo/sts-dev.csv", sha256=sha)},
        fetch=[
            data.FetchSource(
                url="https://example.org/Stsbenchmark.tar.gz",
                archive="tar.gz",
                members={"stsbenchmark/sts-dev.csv": "dev"},
            )
        ],
    )
    monkeypatch.setattr(data, "cards", lambda: {"demo": card})
    monkeypatch.setattr(data.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(archive.read_bytes()))
    root = tmp_path / "root"
    with pytest.raises(UserError, match="run `cl-domains data fetch demo`"):
        data.resolve("demo/dev", root)
    written = data.fetch("demo", root)
    assert written == [root / "sentences/demo/sts-dev.csv"]
    assert data.resolve("demo/dev", root).read_bytes() == src.read_bytes()
    assert data.fetch("demo", root) == []  # already there and verified: nothing to do
    card.files["dev"].sha256 = "0" * 64  # the archive no longer matches the card
    with pytest.raises(UserError, match="does not match its card's sha256; not written"):
        data.fetch("demo", root, force=True)
