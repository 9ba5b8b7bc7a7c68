# model-api: every command a developer or CI runs. `make setup` is idempotent; the others call it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MODEL := service/model_api/artifacts/iris.onnx
CLUSTER ?=
CANARY_SECONDS ?= 30
PYTEST ?= $(BIN)/pytest
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

.PHONY: setup checkov test test-chart serve bench lint demo canary golden mutation clean

setup: $(STAMP) $(MODEL)

# Reinstall only when the pins change.
$(STAMP): pyproject.toml service/constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11+ required"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c service/constraints.txt -e '.[train,dev,batch]'
	touch $@

$(MODEL): $(STAMP) service/model_api/train.py
	$(BIN)/model-api train --out $(MODEL)

# checkov in its own venv: its dependency tree conflicts with the dev pins. Without a package index the
# install fails, no stamp is written, and tests/chart/test_checkov.py skips naming this target.
checkov: $(CHECKOV_STAMP)

$(CHECKOV_STAMP): tests/chart/checkov-constraints.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -c $< checkov \
		&& touch $@ || echo "checkov unavailable: tests/chart/test_checkov.py will skip"

# pytest exits 5 when nothing was collected: not a failure.
test: setup checkov
	$(PYTEST) -m "not cluster" -p no:cacheprovider || [ $$? -eq 5 ]

test-chart: setup checkov
	$(PYTEST) -m "chart and not cluster" -p no:cacheprovider || [ $$? -eq 5 ]

serve: setup
	$(BIN)/model-api serve --host 127.0.0.1 --port 8080

bench: setup
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; } || echo "wrk unavailable: the service bench falls back to locust"
	$(BIN)/python -m tests.bench.service_bench
	$(BIN)/python -m tests.bench.render_bench
	$(BIN)/python -m tests.bench.fetch_bench
	$(BIN)/python -m tests.bench.batch_bench

lint: setup
	$(BIN)/ruff check service loadtest tests .github/scripts
	$(BIN)/ruff format --check service loadtest tests .github/scripts
	$(BIN)/yamllint -c charts/model-api/lintconf.yaml charts/model-api/Chart.yaml charts/model-api/values.yaml charts/model-api/ci values-dev.yaml values-prod.yaml ct.yaml .github/workflows charts/artifacthub-repo.yml
	$(BIN)/hadolint Dockerfile

demo: setup
	$(BIN)/python -m loadtest demo $(if $(CLUSTER),--cluster,)

# The canary rehearsal of values-canary.yaml (real nginx and Prometheus, no cluster): a good candidate must be
# promoted, then the same candidate answering 20 % errors must be aborted. About a minute of load in all.
canary: setup
	$(BIN)/python -m loadtest canary --values values-canary.yaml --duration $(CANARY_SECONDS) --expect promote
	$(BIN)/python -m loadtest canary --values values-canary.yaml --duration $(CANARY_SECONDS) \
		--candidate-error-rate 0.2 --expect abort

# Rewrite the reviewed golden renders after an intended chart change; review the diff before committing.
golden: setup
	UPDATE_GOLDEN=1 $(PYTEST) tests/chart/test_golden.py -p no:cacheprovider

# Plant one chart-breaking mistake at a time in a copy of the chart and confirm the chart suite fails on it
# (slow: one suite run per mutation). MUTATION_ARGS="--list" or "--only NAME" narrows it.
mutation: setup
	$(BIN)/python -m tests.chart.mutation_check $(MUTATION_ARGS)

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) reports .pytest_cache .hypothesis
