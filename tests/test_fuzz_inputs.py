"""Hostile input, generated from a fixed seed: recipes (random keys, types, nesting, aliases,
duplicate keys, encodings) through ``load_recipe`` and corrupted data files through the domain
readers. Each either loads or raises a ``UserError``, in under 2 s and 200 MB."""

import gzip
import json
import random
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import yaml

from cl_domains.core.errors import UserError
from cl_domains.core.recipe import load_recipe

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO / "cl_domains" / "recipes").glob("*.yaml"))
N_RECIPES, N_FILES = 520, 210
TIME_S, MEMORY_B = 2.0, 200 * 2**20


def _outcome(fn, *args):
    try:
        fn(*args)
        return "ok"
    except UserError as exc:
        assert len(str(exc)) < 5000, str(exc)[:300]
        return "user_error"


def bounded(fn, *args, trace=True):
    """Run ``fn``: it returns or raises UserError, in under TIME_S; with ``trace``, again under
    tracemalloc (which slows Python several times) to bound its allocations by MEMORY_B."""
    t = time.perf_counter()
    outcome = _outcome(fn, *args)
    seconds = time.perf_counter() - t
    assert seconds < TIME_S, f"{seconds:.1f}s"
    if not trace:
        return outcome
    tracemalloc.start()
    try:
        _outcome(fn, *args)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_B, f"{peak / 2**20:.0f} MB"
    return outcome


# ------------------------------------------------------------------------------------------ recipes
def random_scalar(rng):
    return rng.choice(
        [
            lambda: rng.randint(-(10**6), 10**6),
            lambda: rng.random() * 10 ** rng.randint(-5, 5),
            lambda: rng.choice([True, False]),
            lambda: None,
            lambda: "".join(rng.choice("ab_.-é中\t ") for _ in range(rng.randint(0, 12))),
            lambda: rng.choice(["epoch", "auto", "cpu", "simcse", "null", "1e-5", "yes", "~", ""]),
            lambda: float(rng.choice(["nan", "inf", "-inf"])),
            lambda: 10 ** rng.randint(10, 40),
        ]
    )()


def random_value(rng, depth=0):
    r = rng.random()
    if depth > 4 or r < 0.6:
        return random_scalar(rng)
    if r < 0.8:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {random_key(rng): random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def random_key(rng):
    return rng.choice(
        [
            "name",
            "domain",
            "model",
            "data",
            "method",
            "train",
            "eval",
            "paper",
            "profiles",
            "lr",
            "seed",
            "max_steps",
            "hidden",
            "batch_size",
            "metrics",
            "quick",
            "x" * rng.randint(1, 300),
            "nmae",
            "eval_every",
            "epochs",
            "dropout",
            "backbone",
            "dataset",
            "split",
            "select_metric",
        ]
    )


def mutate(rng, d, depth=0):
    """Set, replace or delete a random key somewhere in ``d``."""
    keys = list(d)
    if keys and rng.random() < 0.5:
        k = rng.choice(keys)
        if isinstance(d[k], dict) and depth < 3 and rng.random() < 0.6:
            return mutate(rng, d[k], depth + 1)
        if rng.random() < 0.2:
            del d[k]
        else:
            d[k] = random_value(rng)
    else:
        d[random_key(rng)] = random_value(rng)


def text_attack(rng, text):
    """Text-level damage that a dict cannot express."""
    kind = rng.randrange(9)
    lines = text.splitlines()
    if kind == 0:  # an alias bomb, or a plain alias
        bomb = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
        )
        return (bomb + text) if rng.random() < 0.5 else text.replace("name:", "x: &n 1\nname:", 1) + "y: *n\n"
    if kind == 1:  # deep nesting, block or flow
        n = rng.choice([40, 1000, 20000])
        return (
            text + "deep: " + "[" * n + "]" * n + "\n"
            if rng.random() < 0.5
            else text + "".join("  " * i + f"k{i}:\n" for i in range(min(n, 300))) + "  " * 300 + "v: 1\n"
        )
    if kind == 2 and lines:  # a duplicated line: duplicate keys
        i = rng.randrange(len(lines))
        return "\n".join(lines[: i + 1] + [lines[i]] + lines[i + 1 :])
    if kind == 3:  # another encoding, or raw bytes
        return rng.choice(
            [
                text.encode("utf-16"),
                text.encode("latin-1", "replace") + b"\xe9\xff",
                bytes(rng.randrange(256) for _ in range(rng.randint(1, 400))),
            ]
        )
    if kind == 4:  # truncated
        return text[: rng.randrange(len(text) + 1)]
    if kind == 5:  # characters flipped
        chars = list(text)
        for _ in range(rng.randint(1, 10)):
            if chars:
                chars[rng.randrange(len(chars))] = rng.choice(":-[]{}&*!|>'\"#%@`\t\n ")
        return "".join(chars)
    if kind == 6:  # tags and YAML oddities
        return text + rng.choice(
            [
                "t: !!python/object:os.system [ls]\n",
                "t: !!binary aGVsbG8=\n",
                "t: 2020-01-01\n",
                "? [a, b]\n: 1\n",
                "t: !!set {a, b}\n",
                "<<: {name: x}\n",
                "--- \n---\n",
            ]
        )
    if kind == 7:  # a big file
        return text + "big: '" + "x" * rng.choice([10**5, 2 * 10**6]) + "'\n"
    return text


def generated_recipes(n):
    rng = random.Random(1234)
    bases = [yaml.safe_load(p.read_text()) for p in RECIPES]
    for i in range(n):
        d = json.loads(json.dumps(rng.choice(bases)))
        for _ in range(rng.randint(0, 4)):
            mutate(rng, d)
        try:
            text = yaml.safe_dump(d, allow_unicode=rng.random() < 0.5, sort_keys=False)
        except (yaml.YAMLError, ValueError):
            text = str(d)
        attacked = rng.random() < 0.45
        yield i, text_attack(rng, text) if attacked else text, rng.choice([None, None, "quick", "paper", "x"]), attacked


def test_generated_recipes_give_only_user_errors(tmp_path):
    for p in RECIPES:  # domain modules imported once, outside the timing
        load_recipe(p)
    outcomes = {}
    for i, content, profile, attacked in generated_recipes(N_RECIPES):
        f = tmp_path / f"r{i}.yaml"
        (f.write_bytes if isinstance(content, bytes) else f.write_text)(content)
        outcome = bounded(load_recipe, f, profile, trace=i % (3 if attacked else 16) == 0)  # memory of a sample
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert sum(outcomes.values()) >= 500 and outcomes.get("user_error", 0) > 100, outcomes


# ------------------------------------------------------------------------------------------ data files
def _samples():
    """(reader, file name, valid content) for each domain's text formats."""
    from cl_domains.hetgraph.data import _read_edges
    from cl_domains.regression.data import _read_numeric, _read_stsb_dir, load_table
    from cl_domains.sentences.data import (
        read_corpus,
        read_sick,
        read_stsb,
        read_triplets,
    )
    from cl_domains.seqrec.data import read_sequences
    from cl_domains.slu.data import read_fsc_csv, read_massive_jsonl, read_slurp_jsonl
    from cl_domains.timeseries.data import _read_tsv, read_forecast

    rows = "\n".join(f"2016-07-01 {h:02d}:00:00,{h * 0.5},{h + 1.25},{-h}" for h in range(24))
    return [
        (read_corpus, "c.txt", "a first sentence .\nanother one here\n\nthird line\n"),
        (read_triplets, "t.csv", 'sent0,sent1,hard_neg\na man runs,a person runs,a man sleeps\n"q, x",b,c\n'),
        (
            read_stsb,
            "s.csv",
            "main\tx\t2012\t1\t4.2\tA man plays.\tA man is playing.\nmain\tx\t2012\t2\t1.0\tA cat.\tA dog.\n",
        ),
        (read_sick, "SICK.txt", "pair_ID\tsentence_A\tsentence_B\trelatedness_score\n1\ta b\ta c\t3.5\n2\tx\ty\t1.0\n"),
        (lambda p: read_sequences(p), "seq.txt", "1 1 2 3 4\n2 2 3 5 1 4\n3 5 4 3\n"),
        (
            lambda p: load_table(p, "y"),
            "tab.csv",
            "a,b,y\n" + "".join(f"{i},{i * 2 % 7},{i * 0.3}\n" for i in range(20)),
        ),
        (lambda p: read_forecast(p, "mine", univariate=False), "mine.csv", "date,HUFL,HULL,OT\n" + rows + "\n"),
        (_read_tsv, "u_TRAIN.tsv", "1\t0.1\t0.2\t0.3\n2\t0.5\t0.4\t0.1\n"),
        (
            lambda p: read_fsc_csv(p),
            "fsc.csv",
            (
                ",path,speakerId,transcription,action,object,location\n"
                "0,wavs/a.wav,s1,Turn on the lights,activate,lights,none\n"
            ),
        ),
        (lambda p: read_massive_jsonl(p), "m.jsonl", '{"id": "1", "scenario": "alarm", "utt": "wake me up"}\n'),
        (
            lambda p: read_slurp_jsonl(p),
            "sl.jsonl",
            '{"slurp_id": 1, "sentence": "wake me", "scenario": "alarm", "recordings": [{"file": "a.flac"}]}\n',
        ),
        (lambda p: _read_numeric(p, 3, sep="\t"), "num.dat", "1\t2\t3\n4\t5\t6\n"),
        (_read_stsb_dir, "dir.tsv", "index\tsentence1\tsentence2\tscore\n0\ta\tb\t2.5\n"),
        (lambda p: _read_edges(p, 5, 5), "edges.txt", "0 1\n2 3\n4 0\n"),
    ]


def corrupt(rng, name, text):
    """A damaged version of a valid file: (file name, bytes)."""
    data = text.encode()
    kind = rng.randrange(12)
    if kind == 0:
        return name, data[: rng.randrange(len(data))]  # truncated
    if kind == 1:
        return name, bytes(rng.randrange(256) for _ in range(rng.randint(0, 3000)))  # binary
    if kind == 2:  # a truncated gzip
        z = gzip.compress(data * rng.randint(1, 50))
        return name + ".gz", z[: rng.randrange(1, len(z))]
    if kind == 3:
        return name + ".gz", data  # not gzip at all
    if kind == 4:
        return name, data.split(b"\n")[0] + b"\n"  # header (or first line) only
    if kind == 5:
        return name, b""
    if kind == 6:  # flipped bytes
        b = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return name, bytes(b)
    if kind == 7:  # a huge field / number
        return name, data.replace(b"a", b"9" * rng.choice([200, 200_000]), 1)
    if kind == 8:  # columns removed or added
        lines = data.split(b"\n")
        i = rng.randrange(len(lines))
        sep = b"\t" if b"\t" in data else b"," if b"," in data else b" "
        lines[i] = sep.join(lines[i].split(sep)[:-1]) if rng.random() < 0.5 else lines[i] + sep + b"extra"
        return name, b"\n".join(lines)
    if kind == 9:  # hostile numbers
        return name, data.replace(b"1", rng.choice([b"nan", b"-1", b"1e400", b"99999999999999999999", b"0x1", b""]))
    if kind == 10:
        return name, data.replace(b"\n", b"\r", rng.randint(1, 3))
    return name, b"\x00" * rng.randint(1, 50) + data


def test_corrupted_data_files_give_only_user_errors(tmp_path):
    samples = _samples()
    for reader, name, text in samples:  # the valid samples load
        (tmp_path / name).write_text(text)
        assert bounded(reader, tmp_path / name) == "ok", name
    rng = random.Random(99)
    outcomes = {}
    for i in range(N_FILES):
        reader, name, text = samples[i % len(samples)]
        fname, content = corrupt(rng, name, text)
        f = tmp_path / f"{i}" / fname
        f.parent.mkdir()
        f.write_bytes(content)
        try:
            outcome = bounded(reader, f)
        except AssertionError:
            raise
        except Exception as exc:  # noqa: BLE001 - the failure this test exists for
            pytest.fail(f"{fname} (case {i}) raised {type(exc).__name__}: {exc}")
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert outcomes.get("user_error", 0) > 100, outcomes


def test_seqrec_id_far_above_the_number_of_items_is_refused_with_its_memory(tmp_path):
    from cl_domains.seqrec.data import read_sequences

    f = tmp_path / "seq.txt"
    f.write_text("1 1 2 3\n2 3 2 50000000\n")
    with pytest.raises(UserError, match=r"line 2: item id 50,000,000 .*GB"):
        read_sequences(f)
    f.write_text("1 1 2 3\n2 3 2 1000000000000\n")
    with pytest.raises(UserError, match=r"line 2"):
        read_sequences(f)
    f.write_text("1 1 2 3\n2 3 2 " + "9" * 30 + "\n")
    with pytest.raises(UserError, match=r"line 2"):
        read_sequences(f)
    f.write_text("1 1 2 3\n2 3 2 4\n")
    assert np.array_equal(read_sequences(f).items, [1, 2, 3, 3, 2, 4])


# ------------------------------------------------------------------------------------------ named cases
AIRFOIL = (REPO / "cl_domains/recipes/supremix_airfoil.yaml").read_text()


@pytest.mark.parametrize(
    "edit, overrides, message",
    [
        (lambda t: "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n" + t, [], "aliases .* not allowed"),
        (lambda t: t + "deep: " + "[" * 10000 + "]" * 10000 + "\n", [], "nested deeper than 32"),
        (
            lambda t: t.replace("  dropout: 0.0\n", "  dropout: 0.0\n  dropout: 0.1\n"),
            [],
            "duplicate key 'dropout' .first on line 9",
        ),
        (lambda t: t.encode("utf-16"), [], "line 1: not UTF-8"),
        (lambda t: t + "big: '" + "x" * 1_100_000 + "'\n", [], "more than the 1,000,000"),
        (
            lambda t: t,
            ["train.max_steps=true"],
            "'train.max_steps' = True is invalid: .*expected a number, got a boolean",
        ),
        (lambda t: t, ["train.eval_before=1"], "'train.eval_before' = 1 is invalid: .*expected true or false"),
        (lambda t: t, ["model.dropout=yes"], "'model.dropout' = True is invalid"),
        (lambda t: t.replace("  seed: 0", "  seed: " + "9" * 5000), [], "unreadable value"),
    ],
)
def test_recipe_limits(tmp_path, edit, overrides, message):
    f = tmp_path / "r.yaml"
    text = edit(AIRFOIL)
    (f.write_bytes if isinstance(text, bytes) else f.write_text)(text)
    t = time.perf_counter()
    with pytest.raises(UserError, match=message):
        load_recipe(f, None, overrides)
    assert time.perf_counter() - t < TIME_S
    assert (
        load_recipe(REPO / "cl_domains/recipes/supremix_airfoil.yaml", None, ["train.max_steps=3"]).train.max_steps == 3
    )
