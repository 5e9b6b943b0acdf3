#!/usr/bin/env bash
# Both methods on the 9 shared UCR sets (paper budget: 200 iterations of batch 8), one run after another.
# Usage: scripts/ucr_benchmark.sh OUT_DIR [sets...]; each run's metrics land in OUT_DIR/<recipe>-<time>/metrics.json.
set -u
out=${1:-runs/ucr}; shift || true
sets=${*:-Chinatown ItalyPowerDemand SyntheticControl ECG200 TwoLeadECG CBF GunPoint Coffee ArrowHead}
for s in $sets; do
  cl-domains run recipes/autotcl_ucr.yaml --profile paper --set data.path=ucr/$s --out "$out/autotcl/$s"
  cl-domains run recipes/autotcl_ucr.yaml --profile paper --set data.path=ucr/$s --set 'method={name: ts2vec}' \
    --set model.mask_p=0.5 --out "$out/ts2vec/$s"
done
