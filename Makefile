# eventyard developer targets. Every target creates .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test coverage check bench example clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/eventyard serve --demo

check: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy
	$(BIN)/mypy --strict --explicit-package-bases examples/retail
	$(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile

# Two pytest workers: most tests wait on servers and workers, so they overlap well;
# --dist loadscope keeps each module (and its module-scoped server) on one worker.
test: check
	$(BIN)/pytest -n 2 --dist loadscope

# The same suite under coverage, servers and workers it starts included (the
# [tool.coverage.run] patch in pyproject.toml); the total is printed at the end. It is
# not part of `make test`: tracing every line makes the suite about 1.5 times slower.
coverage: $(STAMP)
	@rm -f .coverage .coverage.*
	@$(BIN)/coverage run -m pytest -n 2 --dist loadscope; status=$$?; \
	$(BIN)/coverage combine -q; \
	echo "total coverage (tests and the servers and workers they start): $$($(BIN)/coverage report --format=total)%"; \
	exit $$status

bench: $(STAMP)
	@for f in bench/[!_]*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

example: $(STAMP)
	$(BIN)/python examples/retail/run.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
