"""Generated hostile files through every reader, in process: seeded random mutations of small valid files
(truncation, a wrong delimiter, huge ids, NaN/inf/overflowing numbers, paths that leave their folder,
non-UTF-8 bytes, damaged gzip, dropped or duplicated lines). Each case ends in a result or a ``UserError``,
never another exception; no message shows the content of the file outside the data folder; a path that
leaves its folder is always refused; the outside file lives in the harness's sentinel folder, which no case
changes; each case finishes in under 2 s and the whole run grows the process by less than 1 GiB. ``CASES``
cases per reader and ``2 * CASES`` generated archives; two representative cases also go through the CLI in a
bounded child (exit 2, one paragraph, nothing outside printed)."""

from __future__ import annotations

import gzip
import io
import random
import re
import resource
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from cl_domains.core.errors import UserError

from .harness import assert_clean_exit, run_many

CASES = 30  # generated cases per reader
TIME_S = 2.0
SECRET = b"SECRET-OUTSIDE-CONTENT"
KINDS = (
    "truncate",
    "delimiter",
    "huge_id",
    "nonfinite",
    "non_utf8",
    "gzip",
    "lines",
    "empty",
    "flip",
    "escape",
)


# ------------------------------------------------------------------------------------------ valid samples
def _log() -> str:
    rows = [f"u{u},i{(u * 3 + t) % 7},{100 + t}" for u in range(5) for t in range(5)]
    return "user_id,item_id,timestamp\n" + "\n".join(rows) + "\n"


def _ts(regress: bool) -> str:
    head = "@problemName p\n@univariate true\n@equalLength false\n"
    head += "@targetLabel true\n" if regress else "@classLabel true a b\n"
    cases = [",".join(f"{(i * j) % 5 * 0.5}" for j in range(3 + i % 4)) for i in range(8)]
    labels = [f"{i * 1.5}" if regress else "ab"[i % 2] for i in range(8)]
    return head + "@data\n" + "\n".join(f"{c}:{y}" for c, y in zip(cases, labels, strict=False)) + "\n"


def _long() -> str:
    rows = [f"s{i},{t},{(i + t) * 0.25},{'ab'[i % 2]}" for i in range(6) for t in range(3 + i % 3)]
    return "series,time,value,label\n" + "\n".join(rows) + "\n"


def _pairs() -> str:
    rows = [f"sentence {i} here,another {i} there,{i % 5 + 0.5}" for i in range(8)]
    return "sentence1,sentence2,score\n" + "\n".join(rows) + "\n"


def _regression() -> str:
    return "a,b,y\n" + "".join(f"{i},{i * 2 % 7},{i * 0.3}\n" for i in range(20))


def make_samples(root: Path, outside: Path) -> dict:
    """name -> (reader(path) callable, file to mutate, escape values to splice in or None); ``outside`` is a
    file outside ``root`` that the escape values point at."""
    from cl_domains.core.tables import read_table
    from cl_domains.hetgraph.data import load_graph, load_heco
    from cl_domains.regression.data import load_table
    from cl_domains.sentences.data import read_scored_pairs
    from cl_domains.seqrec.interactions import read_interactions
    from cl_domains.slu.data import read_manifest, write_wav
    from cl_domains.timeseries.data import read_long
    from cl_domains.timeseries.ts_format import read_ts

    data = root / "data"
    data.mkdir()
    files = {
        "table.csv": "a,b\n1,x\n2,y\n3,z\n",
        "table.jsonl": '{"a": 1, "b": "x"}\n{"a": 2, "b": "y"}\n',
        "log.csv": _log(),
        "log.inter": _log().replace(",", "\t").replace("user_id\t", "user_id:token\t"),
        "c.ts": _ts(False),
        "r.ts": _ts(True),
        "long.csv": _long(),
        "pairs.csv": _pairs(),
        "reg.csv": _regression(),
    }
    for name, text in files.items():
        (data / name).write_text(text)
    audio = data / "audio"
    audio.mkdir()
    for i in range(4):
        write_wav(audio / f"w{i}.wav", np.sin(np.arange(800) * (i + 1) / 10))
    (data / "manifest.csv").write_text("path,label\n" + "".join(f"audio/w{i}.wav,{'ab'[i % 2]}\n" for i in range(4)))
    graph = data / "graph"
    graph.mkdir()
    np.save(graph / "feat.npy", np.eye(6, dtype=np.float32))
    (graph / "e.txt").write_text("0 1\n1 2\n2 3\n3 4\n4 5\n5 0\n")
    (graph / "labels.txt").write_text("1\n2\n1\n2\n1\n2\n")
    schema = {
        "name": "g",
        "target": "a",
        "nodes": {"a": {"features": "feat"}, "b": {"count": 3}},
        "edges": {"e.txt": ["a", "a"]},
        "labels": "labels.txt",
        "metapaths": {"aa": ["a", "a", "a"]},
    }
    (graph / "schema.yaml").write_text(yaml.safe_dump(schema, sort_keys=False))
    from torch_geometric.data import HeteroData

    g = HeteroData()
    g["a"].x = torch.ones(6, 2)
    g["b"].num_nodes = 3
    g["a", "to", "b"].edge_index = torch.tensor([[0, 1, 2, 3], [0, 1, 2, 0]])
    torch.save(g, data / "g.pt")

    up = "../" * len(graph.relative_to(outside.parent.parent).parts)  # from the deepest folder to the sentinel's parent
    escapes = [f"{up}{outside.parent.name}/{outside.name}".encode(), str(outside).encode(), b"../" * 12 + b"etc/passwd"]
    return {
        "read_table csv": (lambda p: read_table(p), data / "table.csv", None),
        "read_table jsonl": (lambda p: read_table(p), data / "table.jsonl", None),
        "read_interactions csv": (lambda p: read_interactions(p), data / "log.csv", None),
        "read_interactions inter": (lambda p: read_interactions(p), data / "log.inter", None),
        "read_ts classify": (read_ts, data / "c.ts", None),
        "read_ts regress": (read_ts, data / "r.ts", None),
        "read_long": (lambda p: read_long(p, label="label", path=p), data / "long.csv", None),
        "read_scored_pairs": (read_scored_pairs, data / "pairs.csv", None),
        "regression load_table": (lambda p: load_table(p, "y"), data / "reg.csv", None),
        "read_manifest": (read_manifest, data / "manifest.csv", escapes),
        "load_heco schema": (lambda p: load_heco(str(p)), graph / "schema.yaml", escapes),
        "load_heco edges": (lambda p: load_heco(str(graph / "schema.yaml")), graph / "e.txt", None),
        "load_heco features": (lambda p: load_heco(str(graph / "schema.yaml")), graph / "feat.npy", None),
        "load_graph": (load_graph, data / "g.pt", None),
    }


# ------------------------------------------------------------------------------------------ mutations
def _spans(data: bytes, pattern: bytes) -> list[tuple[int, int]]:
    return [m.span() for m in re.finditer(pattern, data)]


def _replace_one(rng: random.Random, data: bytes, pattern: bytes, new: bytes) -> bytes:
    spans = _spans(data, pattern)
    if not spans:
        return data + new
    a, b = rng.choice(spans)
    return data[:a] + new + data[b:]


def mutate(rng: random.Random, kind: str, data: bytes, escapes: list[bytes] | None) -> tuple[bytes, str]:
    """(mutated bytes, how to write them: ``"plain"``, ``"gz"`` (already gzip bytes) or ``"compress"``);
    ``escape`` falls back to flipped bytes for files without paths."""
    if kind == "truncate":
        return data[: rng.randrange(len(data))], "plain"
    if kind == "delimiter":
        a, b = rng.choice([(b",", b";"), (b",", b"\t"), (b"\t", b","), (b":", b","), (b" ", b",")])
        return data.replace(a, b), "plain"
    if kind == "huge_id":
        big = rng.choice([b"Z" * 2000, b"9" * 400, b"Q" * 1_100_000, b"7" * 30])
        return _replace_one(rng, data, rb"[A-Za-z0-9_]+", big), "plain"
    if kind == "nonfinite":
        new = rng.choice([b"nan", b"inf", b"-inf", b"1e400", b"1e300", b"-1e308", b"NaN"])
        out = data
        for _ in range(rng.randint(1, 3)):
            out = _replace_one(rng, out, rb"-?\d+(\.\d+)?", new)
        return out, "plain"
    if kind == "non_utf8":
        i = rng.randrange(len(data) + 1)
        return data[:i] + rng.choice([b"\xff\xfe", b"\xc3(", b"\x80\x80\x80", b"\xed\xa0\x80"]) + data[i:], "plain"
    if kind == "gzip":
        z = gzip.compress(data)
        if rng.random() < 0.5:
            return z[: rng.randrange(1, len(z))], "gz"  # truncated gzip
        b = bytearray(z)
        for _ in range(rng.randint(1, 6)):
            b[rng.randrange(10, len(b))] ^= 0x55
        return bytes(b), "gz"
    if kind == "lines":
        lines = data.split(b"\n")
        i = rng.randrange(len(lines))
        if rng.random() < 0.5:
            del lines[i]
        else:
            lines.insert(i, lines[rng.randrange(len(lines))])
        return b"\n".join(lines), "compress" if rng.random() < 0.3 else "plain"
    if kind == "empty":
        return rng.choice([b"", b"\n", data.split(b"\n")[0] + b"\n"]), "plain"
    if kind == "escape" and escapes:
        if data.startswith(b"name:") and rng.random() < 0.4:  # a schema's folder
            return data + b"folder: " + rng.choice(escapes) + b"\n", "plain"
        return _replace_one(
            rng, data, rb"audio/w\d\.wav|e\.txt|labels\.txt|feat(?=\n|$| )", rng.choice(escapes)
        ), "plain"
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        b[rng.randrange(len(b))] = rng.randrange(256)
    return bytes(b), "plain"


def _outcome(reader, path: Path) -> str:
    try:
        reader(path)
        return "ok"
    except UserError as exc:
        text = str(exc)
        assert SECRET.decode() not in text, f"the error shows the outside file: {text[:300]}"
        assert len(text) < 5000 and "Traceback" not in text, text[:300]
        return "user_error"


def run_cases(tmp_path: Path, outside: Path) -> dict[str, dict[str, int]]:
    samples = make_samples(tmp_path / "work", outside)
    counts: dict[str, dict[str, int]] = {}
    for name, (reader, path, _) in samples.items():  # the valid files load
        assert _outcome(reader, path) == "ok", name
    for _r, (name, (reader, path, escapes)) in enumerate(samples.items()):
        rng = random.Random(f"hostile-readers-{name}")
        original = path.read_bytes()
        gz_ok = path.suffix not in (".npy", ".pt", ".yaml") and not name.startswith("load_heco")
        per = counts.setdefault(name, {})
        for i in range(CASES):
            kind = KINDS[i % len(KINDS)]
            data, how = mutate(rng, kind, original, escapes)
            target = path
            if how != "plain" and gz_ok:  # a .gz beside the original
                target = path.with_name(path.name + ".gz")
                data = gzip.compress(data) if how == "compress" else data
            target.write_bytes(data)
            t = time.perf_counter()
            try:
                outcome = _outcome(reader, target)
            except AssertionError:
                raise
            except Exception as exc:  # noqa: BLE001 - the failure this test exists for
                pytest.fail(f"{name}, case {i} ({kind}) raised {type(exc).__name__}: {str(exc)[:300]}")
            finally:
                path.write_bytes(original)
                if target != path:
                    target.unlink()
            assert time.perf_counter() - t < TIME_S, f"{name}, case {i} ({kind}) took {time.perf_counter() - t:.1f}s"
            if kind == "escape" and escapes and data != original:
                assert outcome == "user_error", f"{name}, case {i}: a path outside its folder was read"
            per[outcome] = per.get(outcome, 0) + 1
    return counts


def _archives(rng: random.Random) -> tuple[bytes, str, str]:
    """A generated download: (blob, archive type, member asked for), often hostile."""
    kind = rng.choice(["tar.gz", "zip", "gz"])
    member = rng.choice(["ok.txt", "d/ok.txt", "../up.txt", "/abs.txt", "link", "missing.txt", "d"])
    if kind == "gz":
        z = gzip.compress(b"payload" * rng.randint(1, 200))
        return (z if rng.random() < 0.3 else z[: rng.randrange(1, len(z))]), kind, member
    buf = io.BytesIO()
    if kind == "tar.gz":
        with tarfile.open(fileobj=buf, mode="w:gz") as t:
            for name in ("ok.txt", "d/ok.txt", "../up.txt", "/abs.txt"):
                info = tarfile.TarInfo(name)
                info.size = 2
                t.addfile(info, io.BytesIO(b"ok"))
            link = tarfile.TarInfo("link")
            link.type, link.linkname = rng.choice([(tarfile.SYMTYPE, "/etc/passwd"), (tarfile.LNKTYPE, "ok.txt")])
            t.addfile(link)
            folder = tarfile.TarInfo("d")
            folder.type = tarfile.DIRTYPE
            t.addfile(folder)
    else:
        with zipfile.ZipFile(buf, "w") as z:
            for name in ("ok.txt", "d/ok.txt", "../up.txt"):
                z.writestr(name, b"ok")
            info = zipfile.ZipInfo("link")
            info.external_attr = 0o120777 << 16  # a symbolic link
            z.writestr(info, b"/etc/passwd")
    blob = buf.getvalue()
    if rng.random() < 0.4:
        blob = blob[: rng.randrange(1, len(blob))]
    return blob, kind, member


def _outside(sentinel: Path) -> Path:
    outside = sentinel / "outside.txt"
    outside.write_bytes(SECRET + b"\n0 1\n")
    return outside


@pytest.fixture
def outside(tmp_path):
    """The file every escape points at, in a folder hashed before and after (the harness's sentinel)."""
    from .harness import make_sentinel, tree_digest

    folder = make_sentinel(tmp_path / "sentinel")
    path = _outside(folder)
    before = tree_digest(folder)
    yield path
    assert tree_digest(folder) == before, "a hostile case changed a folder outside its data folder"


def test_generated_hostile_files_give_a_result_or_a_user_error(tmp_path, outside):
    (tmp_path / "work").mkdir()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    counts = run_cases(tmp_path, outside)
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * (1 if sys.platform == "darwin" else 1024)
    assert grown < 2**30, f"the readers grew the process by {grown / 2**20:.0f} MiB"
    assert all(sum(c.values()) == CASES for c in counts.values()), counts
    assert all(c.get("user_error", 0) >= CASES // 3 for c in counts.values()), counts


def test_generated_archives_are_extracted_safely_or_refused(tmp_path):
    from cl_domains.core.data import _extract

    rng = random.Random("hostile-archives")
    outcomes = {}
    for i in range(CASES * 2):
        blob, kind, member = _archives(rng)
        f = tmp_path / f"download{i}"
        f.write_bytes(blob)
        try:
            got = _extract(f, kind, None if kind == "gz" else member, "https://example.org/x")
            outcome = "ok"
            assert kind == "gz" or member in ("ok.txt", "d/ok.txt"), f"case {i}: {kind} member {member} was read"
            assert got in (b"ok",) or kind == "gz"
        except UserError:
            outcome = "user_error"
        except Exception as exc:  # noqa: BLE001
            pytest.fail(f"archive case {i} ({kind}, {member}) raised {type(exc).__name__}: {str(exc)[:300]}")
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert sum(outcomes.values()) == CASES * 2 and outcomes.get("user_error", 0) > CASES // 2, outcomes
    assert not (tmp_path.parent / "up.txt").exists()


def test_escapes_through_the_cli_exit_2_without_showing_the_outside_file(tmp_path, outside):
    """A schema naming a file outside its folder (``run``) and a card with a ``file://`` URL (``data fetch``),
    each in a bounded child: exit 2, one paragraph, the outside file's content never printed."""
    g = tmp_path / "g"
    g.mkdir()
    np.save(g / "feat.npy", np.eye(4, dtype=np.float32))
    schema = {"name": "g", "target": "a", "nodes": {"a": {"features": "feat"}}, "edges": {str(outside): ["a", "a"]}}
    (g / "schema.yaml").write_text(yaml.safe_dump(schema))
    cards = tmp_path / "cards"
    cards.mkdir()
    card = {"name": "hostile", "domain": "sentences", "title": "t", "license": "x", "source": "x"}
    card |= {"files": {"f": {"path": "x/f.txt"}}, "fetch": [{"url": outside.as_uri()}]}
    (cards / "hostile.yaml").write_text(yaml.safe_dump(card))
    run, fetch = run_many(
        [
            ["run", "meow_acm", "--set", "data.dataset=null", "--set", f"data.path={g / 'schema.yaml'}"]
            + ["--out", str(tmp_path / "runs")],
            ["data", "fetch", "hostile", "--data-root", str(tmp_path / "root")],
        ],
        env={"CL_DOMAINS_CARDS": str(cards)},
    )
    assert_clean_exit(run, codes=(2,), contains="is an absolute path")
    assert_clean_exit(fetch, codes=(2,), contains="is not an http(s) URL")
    for result in (run, fetch):
        assert SECRET.decode() not in result.output
    assert not (tmp_path / "root").exists()
