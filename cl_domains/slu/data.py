"""FSC and SLURP/MASSIVE readers, class maps, WAV reading and the loaders for real recordings.

Class maps: FSC's 31 intents are ``(action, object, location)`` triples in FSC class-id order
(first appearance in the official ``train_data.csv``); SLURP's 18 scenarios are alphabetical.
Every reader raises :class:`UserError` naming the file and row of a bad record.
"""

from __future__ import annotations

import csv
import json
import re
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.data import open_text
from ..core.errors import UserError
from ..core.paths import inside
from ..core.recipe import short_repr

__all__ = [
    "FSC_INTENTS",
    "SLURP_SCENARIOS",
    "Utterances",
    "read_fsc_csv",
    "read_massive_jsonl",
    "read_slurp_jsonl",
    "read_manifest",
    "read_wav",
    "write_wav",
    "tokenize",
    "SAMPLE_RATE",
]

SAMPLE_RATE = 16_000

FSC_INTENTS: tuple[tuple[str, str, str], ...] = (
    ("change language", "none", "none"),
    ("activate", "music", "none"),
    ("activate", "lights", "none"),
    ("deactivate", "lights", "none"),
    ("increase", "volume", "none"),
    ("decrease", "volume", "none"),
    ("increase", "heat", "none"),
    ("decrease", "heat", "none"),
    ("deactivate", "music", "none"),
    ("activate", "lamp", "none"),
    ("deactivate", "lamp", "none"),
    ("activate", "lights", "kitchen"),
    ("activate", "lights", "bedroom"),
    ("activate", "lights", "washroom"),
    ("deactivate", "lights", "kitchen"),
    ("deactivate", "lights", "bedroom"),
    ("deactivate", "lights", "washroom"),
    ("increase", "heat", "kitchen"),
    ("increase", "heat", "bedroom"),
    ("increase", "heat", "washroom"),
    ("decrease", "heat", "kitchen"),
    ("decrease", "heat", "bedroom"),
    ("decrease", "heat", "washroom"),
    ("bring", "newspaper", "none"),
    ("bring", "juice", "none"),
    ("bring", "socks", "none"),
    ("change language", "Chinese", "none"),
    ("change language", "Korean", "none"),
    ("change language", "English", "none"),
    ("change language", "German", "none"),
    ("bring", "shoes", "none"),
)

SLURP_SCENARIOS: tuple[str, ...] = (
    "alarm",
    "audio",
    "calendar",
    "cooking",
    "datetime",
    "email",
    "general",
    "iot",
    "lists",
    "music",
    "news",
    "play",
    "qa",
    "recommendation",
    "social",
    "takeaway",
    "transport",
    "weather",
)


@dataclass
class Utterances:
    """One split: transcript, class id and speaker per utterance; ``audio`` holds file paths when
    the split has recordings (real data, or after synthesis)."""

    texts: list[str]
    labels: list[int]
    speakers: list[str]
    classes: list[str]
    audio: list[Path] | None = None
    ids: list[str] = field(default_factory=list)
    source: str = ""
    lines: list[int] = field(default_factory=list)  # line of each utterance in its source file, when known

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index) -> Utterances:
        index = list(index)
        pick = lambda xs: [xs[i] for i in index]  # noqa: E731
        return Utterances(
            pick(self.texts),
            pick(self.labels),
            pick(self.speakers),
            self.classes,
            pick(self.audio) if self.audio is not None else None,
            pick(self.ids) if self.ids else [],
            self.source,
            pick(self.lines) if self.lines else [],
        )


def _intent_name(t: tuple[str, str, str]) -> str:
    return "|".join(t)


def read_fsc_csv(path: str | Path, audio_root: str | Path | None = None) -> Utterances:
    """FSC ``{train,valid,test}_data.csv`` (``.gz`` accepted). With ``audio_root`` (the FSC release
    folder holding ``wavs/``), ``audio`` lists ``audio_root/<path>`` for each row."""
    path = Path(path)
    index = {t: i for i, t in enumerate(FSC_INTENTS)}
    texts, labels, speakers, audio, ids = [], [], [], [], []
    need = ("path", "speakerId", "transcription", "action", "object", "location")
    with open_text(path) as f:
        reader = csv.DictReader(f)
        missing = [c for c in need if c not in (reader.fieldnames or [])]
        if missing:
            raise UserError(
                f"{path}: not an FSC csv, missing column(s) {', '.join(missing)} (header: "
                f"{short_repr(reader.fieldnames)})."
            )
        for row in reader:
            row_no = reader.line_num
            if any(row[c] is None for c in need):
                raise UserError(f"{path}, line {row_no}: expected {len(reader.fieldnames)} comma-separated columns.")
            key = (row["action"], row["object"], row["location"])
            if key not in index:
                raise UserError(
                    f"{path}, line {row_no}: intent {short_repr(key)} is not one of FSC's 31 intents (class map "
                    "cl_domains.slu.FSC_INTENTS); fix the row or remove it."
                )
            if not row["transcription"].strip():
                raise UserError(f"{path}, line {row_no}: empty transcription.")
            texts.append(row["transcription"].strip())
            labels.append(index[key])
            speakers.append(row["speakerId"])
            ids.append(row["path"])
            if audio_root is not None:
                audio.append(inside(row["path"], audio_root, file=path, key=f"line {row_no}, column 'path'"))
    if not labels:
        raise UserError(f"{path}: no rows.")
    return Utterances(
        texts,
        labels,
        speakers,
        [_intent_name(t) for t in FSC_INTENTS],
        audio if audio_root is not None else None,
        ids,
        str(path),
    )


def _scenario_id(path: Path, line: int, scenario: str) -> int:
    try:
        return SLURP_SCENARIOS.index(scenario)
    except ValueError:
        raise UserError(
            f"{path}, line {line}: scenario {short_repr(scenario)} is not one of SLURP's 18 scenarios "
            f"({', '.join(SLURP_SCENARIOS)})."
        ) from None


def _jsonl(path: Path):
    with open_text(path) as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield line_no, json.loads(line)
            except (json.JSONDecodeError, RecursionError) as exc:
                raise UserError(f"{path}, line {line_no}: not valid JSON ({str(exc)[:200]}).") from None


def read_massive_jsonl(path: str | Path, partition: str | None = None) -> Utterances:
    """MASSIVE 1.0 en-US JSONL (SLURP's text re-released; ``id`` = SLURP ``slurp_id``): one
    utterance per record, label = scenario id. ``speakers`` holds the record's ``worker_id``."""
    path = Path(path)
    texts, labels, speakers, ids = [], [], [], []
    for line_no, r in _jsonl(path):
        try:
            if partition is not None and r["partition"] != partition:
                continue
            if not isinstance(r["utt"], str):
                raise TypeError("'utt' is not text")
            labels.append(_scenario_id(path, line_no, r["scenario"]))
            texts.append(r["utt"])
            speakers.append(str(r.get("worker_id", "")))
            ids.append(str(r["id"]))
        except (KeyError, TypeError, AttributeError) as exc:
            raise UserError(
                f"{path}, line {line_no}: missing or malformed field {short_repr(str(exc))} "
                "(expected MASSIVE fields id, scenario, utt)."
            ) from None
    if not labels:
        raise UserError(f"{path}: no records{f' with partition {partition!r}' if partition else ''}.")
    return Utterances(texts, labels, speakers, list(SLURP_SCENARIOS), None, ids, str(path))


def read_slurp_jsonl(path: str | Path, audio_root: str | Path | None = None) -> Utterances:
    """SLURP ``dataset/slurp/{train,devel,test}.jsonl``: one utterance per recording (the text of
    the record, label = scenario id); ``audio`` = ``audio_root/<recording file>`` (``slurp_real/``)."""
    path = Path(path)
    texts, labels, speakers, audio, ids = [], [], [], [], []
    for line_no, r in _jsonl(path):
        try:
            label = _scenario_id(path, line_no, r["scenario"])
            if not isinstance(r["sentence"], str) or not isinstance(r["recordings"], list):
                raise TypeError("'sentence' must be text and 'recordings' a list")
            for rec in r["recordings"]:
                texts.append(r["sentence"])
                labels.append(label)
                speakers.append(str(r["slurp_id"]))
                ids.append(rec["file"])
                if audio_root is not None:
                    audio.append(inside(str(rec["file"]), audio_root, file=path, key=f"line {line_no}, 'file'"))
        except (KeyError, TypeError, AttributeError) as exc:
            raise UserError(
                f"{path}, line {line_no}: missing or malformed field {short_repr(str(exc))} "
                "(expected SLURP fields slurp_id, sentence, scenario, recordings)."
            ) from None
    if not labels:
        raise UserError(f"{path}: no recordings.")
    return Utterances(
        texts, labels, speakers, list(SLURP_SCENARIOS), audio if audio_root is not None else None, ids, str(path)
    )


def read_manifest(
    path: str | Path,
    audio_root: str | Path | None = None,
    *,
    audio_column: str = "path",
    label_column: str = "label",
    speaker_column: str | None = "speaker",
    text_column: str | None = "transcript",
    optional: tuple[str, ...] = ("speaker", "transcript"),
    classes: list[str] | None = None,
    allow_outside: bool = False,
) -> Utterances:
    """Your own recordings: a CSV/TSV/JSONL/parquet manifest with one row per audio file (audio path,
    class label, optional speaker and transcript). Relative paths start from ``audio_root`` (default:
    the manifest's folder) and must stay inside it: absolute paths and ``..`` that climbs out are refused
    unless ``allow_outside`` (``data.allow_outside: true``). Classes are the sorted labels, or ``classes``
    (the training split's) for an evaluation split. Speaker or transcript columns named in ``optional`` may
    be absent."""
    from ..core.paths import is_file
    from ..core.tables import read_table, require_columns, table_format

    path = Path(path)
    df = read_table(path, what="audio manifest", dtype={c: str for c in (audio_column, label_column)})
    speaker_column = None if speaker_column in optional and speaker_column not in df.columns else speaker_column
    text_column = None if text_column in optional and text_column not in df.columns else text_column
    require_columns(
        df,
        path,
        {
            "data.audio_column": audio_column,
            "data.label_column": label_column,
            "data.speaker_column": speaker_column,
            "data.text_column": text_column,
        },
        what="audio manifest",
    )
    kind = table_format(path)
    header = 0 if kind in ("jsonl", "parquet") else 1
    root = Path(audio_root).expanduser() if audio_root is not None else path.parent
    lines = [header + i + 1 for i in range(len(df))]
    at = "row" if kind == "parquet" else "line"
    audio, labels = [], []
    for line, file, label in zip(lines, df[audio_column].tolist(), df[label_column].tolist(), strict=False):
        if not isinstance(file, str) or not file.strip():
            raise UserError(
                f"{path}, {at} {line}: empty audio path in column {audio_column!r}; fill it or remove the row."
            )
        if not isinstance(label, str) or not label.strip():
            raise UserError(f"{path}, {at} {line}: empty label in column {label_column!r}; fill it or remove the row.")
        f = inside(
            file.strip(),
            root,
            file=path,
            key=f"{at} {line}, column {audio_column!r}",
            allow_outside=allow_outside,
            option="data.allow_outside",
        )
        if not is_file(f):
            raise UserError(
                f"{path}, {at} {line}: audio file {str(f) if len(str(f)) < 500 else short_repr(str(f))} does not exist (column {audio_column!r} = {short_repr(file)}, "
                f"relative paths start from {root}). Fix the path, set data.audio_root to the folder holding the "
                "audio, or remove the row."
            )
        audio.append(f)
        labels.append(label.strip())
    names = sorted(set(labels)) if classes is None else list(classes)
    index = {c: i for i, c in enumerate(names)}
    for line, label in zip(lines, labels, strict=False):
        if label not in index:
            raise UserError(
                f"{path}, {at} {line}: label {short_repr(label)} does not occur in the training manifest "
                f"(classes: {', '.join(names[:20])}{' ...' if len(names) > 20 else ''}); fix or remove the row."
            )

    def column(name):
        return ["" if not isinstance(v, str) and v != v else str(v) for v in df[name].tolist()] if name else None

    speakers = column(speaker_column) or [""] * len(df)
    texts = column(text_column) or [""] * len(df)
    return Utterances(
        texts, [index[x] for x in labels], speakers, names, audio, [str(x) for x in df[audio_column]], str(path), lines
    )


def read_wav(path: str | Path, expect_rate: int = SAMPLE_RATE, where: str = "") -> np.ndarray:
    """A PCM WAV (8/16/32-bit, any channels, averaged to mono) as float32 in [-1, 1]. Other
    formats (SLURP's FLAC) go through ``soundfile`` (extra ``speech``). Errors name the file and
    ``where`` (e.g. the CSV row it came from)."""
    path = Path(path)
    at = f"{path}{f' ({where})' if where else ''}"
    if not path.is_file():
        raise UserError(f"audio file {at} does not exist.")
    if path.suffix.lower() != ".wav":
        try:
            import soundfile
        except ImportError:
            raise UserError(
                f"{at}: reading {path.suffix} audio needs soundfile: pip install 'cl-domains[speech]'."
            ) from None
        try:
            x, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        except Exception as exc:  # soundfile raises its own error types
            raise UserError(f"{at}: unreadable audio ({exc}).") from None
        x = x.mean(1)
    else:
        try:
            with wave.open(str(path), "rb") as w:
                rate, width, channels, n = w.getframerate(), w.getsampwidth(), w.getnchannels(), w.getnframes()
                raw = w.readframes(n)
        except (wave.Error, EOFError, OSError) as exc:
            raise UserError(f"{at}: not a readable WAV file ({exc}); re-create or remove it.") from None
        dtypes = {1: np.uint8, 2: np.int16, 4: np.int32}
        if width not in dtypes:
            raise UserError(f"{at}: {8 * width}-bit WAV is not supported (use 8, 16 or 32-bit PCM).")
        x = np.frombuffer(raw, dtype=dtypes[width]).astype(np.float32)
        if len(x) < n * channels:
            raise UserError(
                f"{at}: truncated WAV ({len(x) // max(channels, 1)} of {n} frames); re-create or remove it."
            )
        x = (x - 128) / 128 if width == 1 else x / float(2 ** (8 * width - 1))
        x = x.reshape(-1, channels).mean(1) if channels > 1 else x
    if x.size == 0:
        raise UserError(f"{at}: empty audio (0 samples); re-create or remove it.")
    if rate != expect_rate:
        raise UserError(
            f"{at}: sample rate {rate} Hz, expected {expect_rate} Hz; resample the file "
            f"(e.g. sox in.wav -r {expect_rate} out.wav)."
        )
    return x.astype(np.float32, copy=False)


def write_wav(path: str | Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """16-bit mono PCM; ``samples`` float in [-1, 1] or int16."""
    x = samples if samples.dtype == np.int16 else np.clip(np.round(samples * 32767), -32768, 32767).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(x.astype("<i2").tobytes())


def tokenize(text: str) -> list[str]:
    """Lower-cased words (letters, digits, apostrophes): the text encoder's tokens."""
    return re.findall(r"[a-z0-9']+", text.lower())
