# The two commands: `make demo` and `make test`. Both create .venv when it is missing or stale.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-digits test venv lint dist bench bench-tracking bench-run bench-serving bench-images bench-batch bench-shared bench-digits clean

venv: $(STAMP)

# Stale when pyproject.toml or the pinned constraints change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# A venv from before the rename holds the checkout as distribution `shipyard`: replace it.
	$(BIN)/python -m pip uninstall -q -y shipyard 2>/dev/null || true
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	cd examples/diabetes && ../../$(BIN)/shipyard run

# The PyTorch CNN on the 8x8 digits: a learning-rate sweep, gate on accuracy, deploy, smoke test.
demo-digits: $(STAMP)
	cd examples/digits && ../../$(BIN)/shipyard run

test: $(STAMP)
	bash scripts/install-test-deps.sh
	$(BIN)/python -m pytest -q $(PYTEST_ARGS) || { rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: check tests/ and testpaths" >&2; fi; exit $$rc; }

# The sdist and the wheel of the distribution (shipyard-mlops) into dist/, with the standard frontend.
dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --outdir dist .

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/python -m mypy

bench: bench-tracking bench-run bench-serving bench-images bench-batch bench-shared bench-digits

bench-tracking: $(STAMP)
	$(BIN)/python benchmarks/tracking/bench_tracking.py

bench-run: $(STAMP)
	$(BIN)/python benchmarks/pipeline/bench_run.py

bench-serving: $(STAMP)
	$(BIN)/python benchmarks/serving/bench_serving.py

bench-images: $(STAMP)
	bash scripts/install-test-deps.sh
	$(BIN)/python benchmarks/images/bench_image.py

bench-batch: $(STAMP)
	$(BIN)/python benchmarks/batch/bench_batch.py

# Training one process vs Ray Train workers, serving with batching off/on, image size (podman).
bench-digits: $(STAMP)
	bash scripts/install-test-deps.sh
	$(BIN)/python benchmarks/models/bench_digits.py

# Starts its own PostgreSQL and S3 server (the packages `make test` installs).
bench-shared: $(STAMP)
	bash scripts/install-test-deps.sh
	$(BIN)/python benchmarks/shared/bench_shared.py

clean:
	rm -rf $(VENV) examples/diabetes/.shipyard examples/diabetes/outputs examples/digits/.shipyard examples/digits/outputs
