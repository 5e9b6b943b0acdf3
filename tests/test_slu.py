"""SLU domain: log-mel, espeak-ng synthesis, FSC/SLURP loaders, error messages, rehearsal memory,
continual-learning metrics, the COCONUT loss terms and a reduced class-incremental run."""

import gzip
import math

import numpy as np
import pytest
import torch
from conftest import skip_or_fail

from cl_domains.core.errors import UserError
from cl_domains.core.objectives import Objective
from cl_domains.slu import (
    FSC_INTENTS,
    SLURP_SCENARIOS,
    RehearsalMemory,
    SLUDataConfig,
    cl_metrics,
    log_mel,
    mel_filterbank,
    mm_loss,
    nspt_loss,
    prepare,
    read_fsc_csv,
    read_massive_jsonl,
    read_slurp_jsonl,
    read_wav,
    task_splits,
)
from cl_domains.slu.config import MMObjectiveConfig, NSPTObjectiveConfig
from cl_domains.slu.data import write_wav
from cl_domains.slu.features import hz_to_mel, mel_to_hz
from cl_domains.slu.synth import assign_voices, espeak_available, manifest_digest, synthesize


@pytest.fixture
def espeak():
    if not espeak_available():
        skip_or_fail("espeak-ng is not installed (apt-get install espeak-ng)")


needs_espeak = pytest.mark.usefixtures("espeak")


@pytest.fixture
def slu_root(data_root):
    root = data_root / "slu"
    if not (root / "fsc/train_data.csv.gz").is_file():
        skip_or_fail(f"FSC/SLURP text files not found under {root}")
    return root


# ---------------------------------------------------------------- features
def test_mel_scale_and_filterbank_by_hand():
    assert hz_to_mel(1000.0) == pytest.approx(15.0)  # Slaney: 3 mels per 200 Hz below 1 kHz
    assert hz_to_mel(6400.0) == pytest.approx(15.0 + 27.0)  # 27 mels per factor 6.4 above
    assert mel_to_hz(hz_to_mel([123.0, 4567.0])) == pytest.approx([123.0, 4567.0])
    fb = mel_filterbank(40, 400, 16000)
    assert fb.shape == (40, 201) and (fb >= 0).all()
    # filter 0: edges 0, 1 and 2 steps of (hz_to_mel(8000) / 41) mel, all below 1 kHz, so linear
    step = (15.0 + math.log(8.0) / (math.log(6.4) / 27)) / 41 * 200 / 3  # Hz per step
    expect_bin1 = (40.0 / step) * 2.0 / (2 * step)  # rising slope at FFT bin 1 (40 Hz) x area norm 2/(right-left)
    assert float(fb[0, 1]) == pytest.approx(expect_bin1, rel=1e-5)
    # every triangle has unit area in Hz (up to the FFT grid)
    assert (fb[5:].sum(1) * 40.0).numpy() == pytest.approx(np.ones(35), abs=0.05)


def test_log_mel_matches_a_numpy_reference():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(5000).astype(np.float32) * 0.1
    ours = log_mel(x).numpy()
    padded = np.pad(x, 200, mode="reflect")
    n_frames = 1 + (len(padded) - 400) // 160
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)  # periodic Hann
    frames = np.stack([padded[i * 160 : i * 160 + 400] * window for i in range(n_frames)])
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    ref = np.log(power @ mel_filterbank().numpy().T + 1e-6)
    assert ours.shape == (n_frames, 40) == (32, 40)
    assert ours == pytest.approx(ref, abs=2e-3)
    tone = np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000)
    centres = mel_to_hz(np.linspace(0, hz_to_mel(8000), 42))[1:-1]
    assert int(log_mel(tone).mean(0).argmax()) == int(np.abs(centres - 1000).argmin())


# ---------------------------------------------------------------- loaders and class maps
def test_fsc_loader_rows_and_class_map(slu_root):
    train = read_fsc_csv(slu_root / "fsc/train_data.csv.gz")
    valid = read_fsc_csv(slu_root / "fsc/valid_data.csv.gz", audio_root="/fsc")
    assert (len(train), len(valid)) == (23132, 3118)
    assert len(FSC_INTENTS) == len(set(FSC_INTENTS)) == 31 and len(train.classes) == 31
    assert set(train.labels) == set(range(31)) and train.labels[0] == 0  # class 0 = first intent of the csv
    assert len(set(train.texts)) == 248 and len(set(train.speakers)) == 77 and len(set(valid.speakers)) == 10
    assert valid.audio[0].as_posix() == "/fsc/" + valid.ids[0]


def test_slurp_and_massive_loaders(slu_root):
    train = read_massive_jsonl(slu_root / "massive_en-US/train.jsonl.gz")
    dev = read_massive_jsonl(slu_root / "massive_en-US/dev.jsonl.gz")
    assert (len(train), len(dev)) == (11514, 2033)
    assert len(SLURP_SCENARIOS) == 18 and list(SLURP_SCENARIOS) == sorted(SLURP_SCENARIOS)
    assert set(train.labels) == set(range(18))
    devel = read_slurp_jsonl(slu_root / "slurp/devel.jsonl.gz", audio_root="/slurp_real")
    assert len(devel) == 8690 and len(set(devel.speakers)) == 2033 and devel.audio[0].parent.as_posix() == "/slurp_real"


def test_unknown_labels_name_file_and_line(tmp_path):
    csv = tmp_path / "bad.csv"
    csv.write_text(
        ",path,speakerId,transcription,action,object,location\n"
        "0,wavs/a.wav,s1,Turn on the lights,activate,lights,none\n"
        "1,wavs/b.wav,s1,Make me a sandwich,make,sandwich,none\n"
    )
    with pytest.raises(
        UserError, match=r"bad.csv, line 3: intent \('make', 'sandwich', 'none'\) is not one of FSC's 31"
    ):
        read_fsc_csv(csv)
    js = tmp_path / "bad.jsonl.gz"
    with gzip.open(js, "wt") as f:
        f.write('{"id": "1", "partition": "train", "scenario": "alarm", "utt": "wake me up"}\n')
        f.write('{"id": "2", "partition": "train", "scenario": "gardening", "utt": "water the roses"}\n')
    with pytest.raises(UserError, match=r"bad.jsonl.gz, line 2: scenario 'gardening' is not one of SLURP's 18"):
        read_massive_jsonl(js)


# ---------------------------------------------------------------- audio errors
def _wav(path, rate=16000, samples=1600):
    write_wav(path, np.zeros(samples, np.int16) + 100, rate)
    return path


def test_wav_errors_are_clear(tmp_path):
    good = _wav(tmp_path / "good.wav")
    assert read_wav(good).shape == (1600,) and read_wav(good)[0] == pytest.approx(100 / 32768)
    with pytest.raises(UserError, match=r"empty.wav.*empty audio \(0 samples\)"):
        read_wav(_wav(tmp_path / "empty.wav", samples=0))
    with pytest.raises(UserError, match=r"8k.wav.*sample rate 8000 Hz, expected 16000 Hz"):
        read_wav(_wav(tmp_path / "8k.wav", rate=8000))
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x01garbage that is not a wave file")
    with pytest.raises(UserError, match=r"corrupt.wav.*not a readable WAV file"):
        read_wav(tmp_path / "corrupt.wav")
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(UserError, match=r"truncated.wav.*truncated WAV"):
        read_wav(truncated)


def test_real_layout_loader_names_the_row_of_a_bad_file(tmp_path):
    root = tmp_path / "fsc"
    (root / "wavs").mkdir(parents=True)
    _wav(root / "wavs/a.wav")
    _wav(root / "wavs/b.wav", rate=44100)
    csv = root / "data.csv"
    csv.write_text(
        ",path,speakerId,transcription,action,object,location\n"
        "0,wavs/a.wav,s1,Turn on the lights,activate,lights,none\n"
        "1,wavs/b.wav,s2,Lights off,deactivate,lights,none\n"
    )
    cfg = SLUDataConfig(
        format="fsc", train=str(csv), test=str(csv), audio_root=str(root), cache_dir=str(tmp_path / "cache")
    )
    with pytest.raises(UserError, match=r"b.wav \(.*data.csv, row 3\): sample rate 44100 Hz"):
        prepare(cfg, log=lambda *_: None)
    _wav(root / "wavs/b.wav")
    data = prepare(cfg, log=lambda *_: None)
    assert len(data.train_feats) == 2 and data.train_feats[0].shape == (11, 40)


# ---------------------------------------------------------------- synthesis
@needs_espeak
def test_synthesis_is_reproducible_and_eval_voices_are_unseen(tmp_path, slu_root):
    fsc = read_fsc_csv(slu_root / "fsc/valid_data.csv.gz")
    speakers = sorted(set(fsc.speakers))
    rows = [i for i, s in enumerate(fsc.speakers) if s in speakers[:3]][:4] + [
        i for i, s in enumerate(fsc.speakers) if s == speakers[3]
    ][:2]
    train, test = fsc.subset(rows[:4]), fsc.subset(rows[4:])
    voices = assign_voices(train.speakers, test.speakers, seed=0)
    assert not {voices[s].name for s in test.speakers} & {voices[s].name for s in train.speakers}
    builds = [
        synthesize({"train": train, "test": test}, voices, tmp_path / f"b{k}", workers=w, log=lambda *_: None)
        for k, w in enumerate((1, 2))
    ]
    assert manifest_digest(tmp_path / "b0") == manifest_digest(tmp_path / "b1")  # same seed: same sha256 per WAV
    x = read_wav(builds[0]["train"].audio[0])
    assert 0.3 < len(x) / 16000 < 6 and np.abs(x).max() > 0.05
    other = assign_voices(train.speakers, test.speakers, seed=1)
    synthesize({"train": train}, other, tmp_path / "b2", log=lambda *_: None)
    assert manifest_digest(tmp_path / "b2") != manifest_digest(tmp_path / "b0")
    again = synthesize({"train": train, "test": test}, voices, tmp_path / "b0", log=lambda *_: None)  # cached
    assert again["test"].audio == builds[0]["test"].audio


# ---------------------------------------------------------------- continual learning
def test_task_splits():
    assert [len(t) for t in task_splits(31, 10)] == [4] + [3] * 9
    assert [len(t) for t in task_splits(31, 6)] == [6] + [5] * 5
    assert task_splits(18, 3) == [list(range(0, 6)), list(range(6, 12)), list(range(12, 18))]
    with pytest.raises(UserError):
        task_splits(18, sizes=[10, 10])


def test_reservoir_memory_keeps_a_fixed_uniform_sample():
    mem = RehearsalMemory(50, "reservoir", seed=0)
    mem.add_task(list(range(100)), [0] * 100)
    assert len(mem) == 50 and set(mem.indices) <= set(range(100))
    mem.add_task(list(range(100, 400)), [1] * 300)
    idx = mem.indices
    assert len(idx) == len(set(idx)) == 50 and set(idx) <= set(range(400))
    assert 5 <= sum(i < 100 for i in idx) <= 22  # ~ 50 x 100/400 = 12.5 from the first task


def test_herding_memory_is_class_balanced_and_picks_the_mean_first():
    mem = RehearsalMemory(10, "herding")
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.1], [0.1, 1.0]] * 6)
    labels = [0, 0, 0, 1, 1] * 6
    mem.add_task(list(range(30)), labels, feats)
    per = {c: [i for i in mem.indices if labels[i] == c] for c in (0, 1)}
    assert [len(per[0]), len(per[1])] == [5, 5]
    assert mem.per_class[0][0] == 2  # (1, 1) is the closest to the class mean of 0
    mem.add_task(list(range(30, 60)), [2, 2, 3, 3, 4] * 6, feats)
    assert sorted(len(v) for v in mem.per_class.values()) == [2, 2, 2, 2, 2] and len(mem) == 10


def test_cl_metrics_by_hand():
    nan = float("nan")
    acc = np.array([[80, nan, nan], [70, 90, nan], [50, 75, 85]], dtype=float)
    m = cl_metrics(acc, [2, 1, 1])
    # seen-so-far accuracy: 80; (2*70 + 90)/3 = 76.667; (2*50 + 75 + 85)/4 = 65
    assert m["avg_acc"] == pytest.approx((80 + 230 / 3 + 65) / 3)
    assert m["last_acc"] == pytest.approx(65.0)
    assert m["forgetting"] == pytest.approx(((80 - 50) + (90 - 75)) / 2)
    assert cl_metrics(np.array([[42.0]]), [5]) == {"avg_acc": 42.0, "last_acc": 42.0, "forgetting": 0.0}


# ---------------------------------------------------------------- COCONUT losses
def _naive_nspt(a, ya, t_keys, yt, s_keys, ys, tau):
    a, t_keys, s_keys = (torch.nn.functional.normalize(x, dim=-1) for x in (a, t_keys, s_keys))
    out = []
    for i in range(len(a)):
        pos = [float(a[i] @ t_keys[p]) / tau for p in range(len(t_keys)) if yt[p] == ya[i]]
        neg = [float(a[i] @ s_keys[n]) / tau for n in range(len(s_keys)) if ys[n] != ya[i]]
        denom = sum(math.exp(v) for v in pos + neg)
        out.append(-sum(math.log(math.exp(v) / denom) for v in pos) / len(pos))
    return sum(out) / len(out)


def test_nspt_loss_against_the_naive_formula():
    g = torch.Generator().manual_seed(0)
    s_keys = torch.randn(10, 8, generator=g, requires_grad=True)
    ys = torch.tensor([5, 6, 5, 7, 6, 0, 1, 0, 2, 1])  # new classes 5-7, then 5 rehearsal samples of old classes
    anchors, ya = s_keys[5:], ys[5:]
    t_keys, yt = torch.randn(5, 8, generator=g), ys[5:]
    ours = nspt_loss(Objective(NSPTObjectiveConfig()), s_keys, ys, t_keys)
    assert float(ours.detach()) == pytest.approx(
        _naive_nspt(anchors.detach(), ya, t_keys, yt, s_keys.detach(), ys, 0.1), rel=1e-5
    )
    ours.backward()
    assert torch.isfinite(s_keys.grad).all() and s_keys.grad[:5].abs().sum() > 0  # negatives get a gradient


def test_mm_loss_against_the_naive_formula():
    g = torch.Generator().manual_seed(1)
    audio, text = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    phrase = torch.tensor([0, 1, 0, 2, 3, 1])
    a, t = torch.nn.functional.normalize(audio, dim=-1), torch.nn.functional.normalize(text, dim=-1)
    logits = (a @ t.T / 0.1).tolist()
    terms = []
    for direction in (logits, [list(r) for r in zip(*logits, strict=False)]):  # audio -> text, then text -> audio
        for i, row in enumerate(direction):
            pos = [row[j] for j in range(6) if phrase[j] == phrase[i]]
            lse = math.log(sum(math.exp(v) for v in row))
            terms.append(sum(lse - v for v in pos) / len(pos))
    ours = mm_loss(Objective(MMObjectiveConfig()), audio, text, phrase)
    assert float(ours) == pytest.approx(sum(terms) / len(terms), rel=1e-5)


# ---------------------------------------------------------------- a reduced class-incremental run
@needs_espeak
@pytest.mark.integration
def test_reduced_quick_run_orders_the_strategies(tmp_path, slu_root, data_root):
    """8 training speakers, 3 evaluation speakers, FSC in 3 tasks, 3 epochs per task, one seed
    (~1.5 min): joint training beats fine-tuning by far, rehearsal forgets less than fine-tuning,
    and the run writes its table, plot and reusable models."""
    from cl_domains.core.recipe import load_recipe
    from cl_domains.core.train import train_recipe
    from cl_domains.slu import SLUModel

    recipe = load_recipe(
        "recipes/coconut_fsc.yaml",
        "quick",
        [
            "data.train_speakers=8",
            "data.test_speakers=3",
            f"data.cache_dir={tmp_path / 'cache'}",
            "method.n_tasks=3",
            "method.seeds=[0]",
            "method.memory_size=60",
            "train.epochs=3",
        ],
    )
    run = train_recipe(recipe, out=tmp_path / "runs", data_root=data_root)
    final = run.metrics["final"]
    assert final["joint/avg_acc"] > final["finetune/avg_acc"] + 15
    assert final["finetune/forgetting"] > 20 and final["finetune/last_acc"] < 40
    for s in ("replay", "coconut"):
        assert final[f"{s}/forgetting"] < final["finetune/forgetting"]
        assert final[f"{s}/last_acc"] > final["finetune/last_acc"]
    assert {"report.md", "curves.png", "metrics.json"} <= {p.name for p in run.dir.iterdir()}
    assert "| coconut |" in (run.dir / "report.md").read_text()
    # resume: finished trainings are kept, an unfinished one (no result.json) trains again, deterministically
    (run.dir / "strategies/finetune-seed0/result.json").unlink()
    again = train_recipe(resume=run.dir, data_root=data_root)
    assert again.dir == run.dir and again.metrics["final"] == pytest.approx(final)
    assert "finished before, kept" in (run.dir / "train.log").read_text()
    model = SLUModel.load(run.dir / "strategies/joint-seed0/model")
    wav = sorted((tmp_path / "cache").glob("synth-fsc-*/wavs/*/0000.wav"))[0]
    assert model.predict([read_wav(wav)])[0] in model.config["classes"]
