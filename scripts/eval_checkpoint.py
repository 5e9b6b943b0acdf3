"""Score a run's best (validation-selected) checkpoint on the test split, e.g. of a run stopped early.

Usage: python scripts/eval_checkpoint.py RUN_DIR   (prints the test metrics as JSON)
"""

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_model

from cl_domains.core import registry
from cl_domains.core.recipe import load_recipe

run = Path(sys.argv[1])
recipe = load_recipe(run / "config.yaml")
torch.set_num_threads(recipe.train.threads or 1)
_, build = registry.domain(recipe.domain).methods[recipe.method.name]
task = build(recipe, None, torch.device("cpu"))
load_model(task.model, str(run / "best" / "model.safetensors"))
task.model.eval()
print(json.dumps(task.evaluate("test"), indent=1))
