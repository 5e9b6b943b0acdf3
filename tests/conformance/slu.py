"""Conformance cases of the slu estimators: four tone "commands" (0.25 s WAV files), 2 tasks of 2 classes,
one epoch per task of a 1-layer encoder (no speech synthesis)."""

from __future__ import annotations

from test_slu_manifest import make_commands

from cl_domains.slu import COCONUT, ExperienceReplay, FineTuning, JointTraining

from . import Case

TINY = {
    "model": {"dim": 16, "layers": 1, "heads": 2, "ff": 32, "proj_dim": 8},
    "method": {"memory_size": 4},
    "train": {"batch_size": 8, "epochs": 1},
}


def commands(ctx) -> dict:
    if not hasattr(ctx, "commands"):
        ctx.commands = make_commands(ctx.tmp / "cmds")
    return ctx.commands


def inputs(ctx) -> list[str]:
    return [str(ctx.tmp / "cmds" / "audio" / "test" / f"{c}_0.wav") for c in ("lights_on", "music_off", "music_on")]


def case(cls, **kw) -> Case:
    return Case(
        make=lambda ctx: cls(data={"cache_dir": str(ctx.tmp / "cache")}, **TINY),
        fit_args=lambda ctx: (str(commands(ctx)["train"]), str(commands(ctx)["test"])),
        inputs=inputs,
        n=3,
        predict=True,
        **kw,
    )


CASES = {
    "coconut": case(COCONUT, embed_file=lambda ctx: commands(ctx)["test"], eval_data=lambda ctx: commands(ctx)["test"]),
    "replay": case(ExperienceReplay),
    "finetune": case(FineTuning),
    "joint": case(JointTraining),
}
