"""Run under torchrun: the shared Trainer on the toy task; rank 0 writes the run's metrics.

    ddp_train_worker.py OUT_DIR MODE [INTERRUPT_AT]; MODE = new | resume (OUT_DIR is then the run)
Extra trainer settings come as JSON in the environment variable TOY_TRAIN."""

import json
import os
import sys

from toy_task import StopAfter, ToyTask, recipe

from cl_domains.core import distributed as D
from cl_domains.core.runs import Run
from cl_domains.core.train import train_task


def main(out: str, mode: str, interrupt_at: int | None) -> None:
    D.init_from_env()
    r = recipe(**json.loads(os.environ.get("TOY_TRAIN", "{}")))
    task = ToyTask(r.train.batch_size)
    try:
        run = train_task(
            r,
            task,
            out=out,
            run=Run(out) if mode == "resume" else None,
            callbacks=[StopAfter(interrupt_at)] if interrupt_at else (),
        )
        if D.rank() == 0:
            (run.dir.parent / "done.json").write_text(json.dumps({"dir": str(run.dir), **run.metrics}))
    except KeyboardInterrupt:
        pass  # the simulated crash: every rank stops after the same step
    finally:
        D.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else None)
