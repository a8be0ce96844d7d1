# Two commands on a fresh machine (Python 3.11, Node 20):
#   make demo   installs nbops and runs it on an example notebook
#   make test   installs everything the tests need, lints, and runs the whole suite
#   make lab    opens JupyterLab (with the Pipeline panel) on example_notebooks/
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CORE   := $(VENV)/.nbops-core
FULL   := $(VENV)/.nbops-test

.PHONY: setup setup-test demo lab lint test bench clean

$(CORE): pyproject.toml package.json
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# jlpm (from jupyter-builder) builds the JupyterLab extension shipped in the package
	$(BIN)/pip install -q "jupyter-builder>=1.2,<2" "hatch-jupyter-builder>=0.9" hatchling
	$(BIN)/pip install -q -e ".[all,torch]"
	touch $@

$(FULL): $(CORE)
	$(BIN)/pip install -q -e ".[test,ray]"
	bash .ci/install-services.sh
	# Airflow and kfp in venvs of their own (.venv-airflow, .venv-kfp): their pins clash with ours
	bash .ci/install-export-tools.sh
	. $(BIN)/activate && bash .ci/install-lab.sh
	touch $@

setup: $(CORE)
setup-test: $(FULL)

demo: $(CORE)
	. $(BIN)/activate && cd example_notebooks && nbops graph churn.ipynb && nbops run churn.ipynb && nbops runs ls --notebook churn.ipynb

# Root (containers, CI images) must say so to start jupyter.
ROOT_FLAG := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)

lab: $(CORE)
	. $(BIN)/activate && cd example_notebooks && jupyter lab $(ROOT_FLAG)

# ruff's config is [tool.ruff] in pyproject.toml; eslint/prettier's are in package.json.
lint: $(FULL)
	. $(BIN)/activate && ruff check . && ruff format --check . && jlpm lint:check

test: lint
	. $(BIN)/activate && jlpm test && python -m pytest -q

bench: $(FULL)
	. $(BIN)/activate && for b in benchmarks/bench_*.py; do echo "== $$b"; python $$b || exit 1; done

clean:
	rm -rf $(VENV) node_modules nbops/labextension labextension/lib example_notebooks/.nbops
