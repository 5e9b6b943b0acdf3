# The two commands (README): `make run` sets up and runs the main job, `make test` sets up and runs the tests.
# Set-up is scripts/bootstrap: idempotent, a second call installs nothing.
.PHONY: setup run test
RECIPE ?= recipes/debcse_sts.yaml

setup:
	@scripts/bootstrap

run: setup
	.venv/bin/cl-domains run $(RECIPE) $(ARGS)

test:
	@scripts/bootstrap --tsai
	@scripts/test $(ARGS)
