"""Speech from transcripts with espeak-ng: a reproducible synthetic FSC / SLURP.

Each speaker of the corpus is mapped (seeded) to a voice: an espeak-ng accent + voice variant,
a speaking rate and a pitch. Speakers of the evaluation splits get (accent, variant) pairs that
no training speaker uses, so evaluation is on unseen voices. A speaker's distinct phrases are
synthesised once and reused by all of its rows.

espeak-ng is driven in-process through its C library (``libespeak-ng.so.1``, Debian package
``espeak-ng``), ~1.4 ms per utterance instead of ~80 ms per command-line call. Its output depends
on the library's internal state, i.e. on the calls before it; so each voice is synthesised in a
fresh worker process, its phrases in sorted order: the WAVs are then a function of the seed and
the build's contents only (same seed, same sha256 per WAV), whatever the number of workers.
Audio is resampled from espeak's 22,050 Hz to 16 kHz (``scipy.signal.resample_poly``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import multiprocessing as mp
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import UserError
from .data import Utterances, write_wav

__all__ = ["ACCENTS", "VARIANTS", "Voice", "assign_voices", "synthesize", "espeak_available", "EspeakLibrary"]

ACCENTS = (
    "en-us",
    "en",
    "en-gb-scotland",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-gb-x-rp",
    "en-029",
    "en-us-nyc",
)  # "en" = British English (the name "en-gb" is not accepted with a variant)
VARIANTS = (
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "m7",
    "f1",
    "f2",
    "f3",
    "f4",
    "f5",
    "klatt",
    "klatt2",
    "klatt3",
    "klatt4",
)
RATE_RANGE = (130, 210)  # words per minute (espeak default 175)
PITCH_RANGE = (25, 75)  # 0-99 (espeak default 50)
ESPEAK_RATE = 22_050


@dataclass(frozen=True)
class Voice:
    name: str  # accent+variant, as espeak_SetVoiceByName takes it
    rate: int
    pitch: int

    @property
    def key(self) -> str:
        return f"{self.name.replace('+', '_')}_r{self.rate}_p{self.pitch}"


def assign_voices(train_speakers, eval_speakers, seed: int) -> dict[str, Voice]:
    """Speaker id -> :class:`Voice`. Training speakers share the (accent, variant) pairs left after
    each evaluation speaker got one of its own; rate and pitch are drawn per speaker."""
    rng = np.random.default_rng(seed)
    combos = [f"{a}+{v}" for a in ACCENTS for v in VARIANTS]
    order = [combos[i] for i in rng.permutation(len(combos))]
    evals = sorted(set(eval_speakers))
    trains = sorted(set(train_speakers) - set(evals))
    if len(evals) >= len(combos):
        raise UserError(f"{len(evals)} evaluation speakers but only {len(combos)} espeak voices: use fewer speakers.")
    held, pool = order[: len(evals)], order[len(evals) :]
    voices = {}
    for i, s in enumerate(trains):
        voices[s] = Voice(
            pool[i % len(pool)],
            int(rng.integers(*RATE_RANGE, endpoint=True)),
            int(rng.integers(*PITCH_RANGE, endpoint=True)),
        )
    for s, name in zip(evals, held, strict=False):
        voices[s] = Voice(
            name, int(rng.integers(*RATE_RANGE, endpoint=True)), int(rng.integers(*PITCH_RANGE, endpoint=True))
        )
    return voices


def espeak_available() -> bool:
    return ctypes.util.find_library("espeak-ng") is not None or _try_load() is not None


def _try_load():
    for name in ("libespeak-ng.so.1", "libespeak-ng.so", "libespeak-ng.dylib"):
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


class EspeakLibrary:
    """libespeak-ng in synchronous mode; one instance per process (the library is a singleton)."""

    _CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

    def __init__(self):
        self.lib = _try_load()
        if self.lib is None:
            raise UserError(
                "espeak-ng is not installed (libespeak-ng.so.1 not found): "
                "apt-get install espeak-ng (see docs/index.md, 'Install')."
            )
        self._chunks: list[np.ndarray] = []

        def collect(wav, n, events):
            if n > 0:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0

        self._cb = self._CALLBACK(collect)  # keep a reference: the library calls it
        rate = self.lib.espeak_Initialize(2, 0, None, 0)  # AUDIO_OUTPUT_SYNCHRONOUS
        if rate != ESPEAK_RATE:
            raise UserError(f"espeak-ng initialisation failed or runs at {rate} Hz (expected {ESPEAK_RATE}).")
        self.lib.espeak_SetSynthCallback(self._cb)

    def say(self, text: str, voice: Voice) -> np.ndarray:
        """int16 samples at 22,050 Hz."""
        if self.lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
            raise UserError(f"espeak-ng has no voice {voice.name!r} (espeak-ng --voices=en lists them).")
        self.lib.espeak_SetParameter(1, voice.rate, 0)  # espeakRATE
        self.lib.espeak_SetParameter(3, voice.pitch, 0)  # espeakPITCH
        self._chunks.clear()
        data = text.encode("utf-8")
        # espeak_Synth(text, size, position, POS_CHARACTER, end, espeakCHARS_UTF8, None, None)
        if self.lib.espeak_Synth(data, len(data) + 1, 0, 1, 0, 1, None, None) != 0:
            raise UserError(f"espeak-ng failed on {text!r} with voice {voice.name}.")
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)


def _to_16k(x: np.ndarray) -> np.ndarray:
    from scipy.signal import resample_poly

    y = resample_poly(x.astype(np.float32) / 32768.0, 320, 441)  # 22,050 -> 16,000 Hz
    return np.clip(np.round(y * 32767), -32768, 32767).astype(np.int16)


def _synth_voice(job: tuple[Voice, list[str], str]) -> list[dict]:
    """Worker: one voice, its phrases in the given (sorted) order, in a fresh process."""
    voice, texts, folder = job
    engine = EspeakLibrary()
    out_dir = Path(folder) / voice.key
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, text in enumerate(texts):
        x = _to_16k(engine.say(text, voice))
        if x.size == 0:
            raise UserError(f"espeak-ng produced no audio for {text!r} ({voice.name}).")
        f = out_dir / f"{i:04d}.wav"
        write_wav(f, x)
        rows.append(
            {
                "file": f"{voice.key}/{f.name}",
                "text": text,
                "voice": voice.name,
                "rate": voice.rate,
                "pitch": voice.pitch,
                "samples": int(x.size),
                "sha256": hashlib.sha256(f.read_bytes()).hexdigest(),
            }
        )
    return rows


def synthesize(
    splits: dict[str, Utterances], voices: dict[str, Voice], folder: str | Path, *, workers: int = 1, log=print
) -> dict[str, Utterances]:
    """Synthesise every distinct (speaker voice, phrase) of ``splits`` into ``folder`` (WAVs + a
    ``manifest.jsonl`` with sha256 per WAV); reuse a complete build found there. Returns the splits
    with ``audio`` set."""
    folder = Path(folder)
    by_voice: dict[Voice, set[str]] = {}
    for u in splits.values():
        for text, spk in zip(u.texts, u.speakers, strict=False):
            by_voice.setdefault(voices[spk], set()).add(text)
    jobs = [(v, sorted(texts), str(folder / "wavs")) for v, texts in sorted(by_voice.items(), key=lambda kv: kv[0].key)]
    manifest = folder / "manifest.jsonl"
    if not manifest.is_file():
        shutil.rmtree(folder / "wavs", ignore_errors=True)
        t = time.time()
        n = sum(len(j[1]) for j in jobs)
        log(f"synthesising {n} utterances ({len(jobs)} voices) with espeak-ng into {folder}, {workers} worker(s)")
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        with ctx.Pool(max(1, workers), maxtasksperchild=1) as pool:  # a fresh process per voice: reproducible
            rows = [r for part in pool.imap(_synth_voice, jobs) for r in part]
        folder.mkdir(parents=True, exist_ok=True)
        tmp = manifest.with_suffix(".part")
        tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
        os.replace(tmp, manifest)
        log(f"synthesis done: {n} WAVs in {time.time() - t:.1f}s")
    files = {}
    for r in (json.loads(line) for line in manifest.read_text().splitlines()):
        files[(r["voice"], r["rate"], r["pitch"], r["text"])] = folder / "wavs" / r["file"]
    out = {}
    for name, u in splits.items():
        audio = []
        for text, spk in zip(u.texts, u.speakers, strict=False):
            v = voices[spk]
            f = files.get((v.name, v.rate, v.pitch, text))
            if f is None:
                raise UserError(
                    f"{manifest} lacks ({v.name}, {text!r}): the build is incomplete; delete {folder} and rerun."
                )
            audio.append(f)
        out[name] = Utterances(u.texts, u.labels, u.speakers, u.classes, audio, u.ids, u.source)
    return out


def manifest_digest(folder: str | Path) -> str:
    """sha256 of the manifest: equal for two builds iff every WAV's sha256 (and metadata) is equal."""
    return hashlib.sha256((Path(folder) / "manifest.jsonl").read_bytes()).hexdigest()
