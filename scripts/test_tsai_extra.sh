#!/usr/bin/env bash
# The optional tsai extra in its own environment (README, "tsai backbones"): builds .venv-tsai with the CPU
# torch kept (torch pinned in the same pip command), runs tests/test_timeseries_tsai.py there, removes the venv.
# Not part of .ci/run: measured 2.4-5.3 min here (mostly writing the 2.1 GB venv), over the ~2 min CI allowance.
# Exit: 0 tests passed; 3 the extra did not install (reported, tests not run); else pytest's code.
set -uo pipefail
cd "$(dirname "$0")/.."
export CL_DOMAINS_DATA="${CL_DOMAINS_DATA:-$(cd .. && pwd)/shared/data}" OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
venv="${TSAI_VENV:-.venv-tsai}"
rm -rf "$venv"
if ! { python3 -m venv "$venv" \
       && timeout 600 "$venv/bin/pip" install -q torch==2.13.0 \
       && timeout 600 "$venv/bin/pip" install -q -e ".[tsai]" "pytest>=8" torch==2.13.0; }; then
  echo "!!!!!! tsai extra: installing .[tsai] failed: the tsai backbone tests did NOT run !!!!!!" >&2
  rm -rf "$venv"
  exit 3
fi
"$venv/bin/python" -m pytest -q tests/test_timeseries_tsai.py
code=$?
rm -rf "$venv"
exit "$code"
