# Two commands on a fresh machine (Python 3.11, Node 20):
#   make demo   installs nbops and runs it on an example notebook
#   make test   installs everything the tests need and runs the whole suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CORE   := $(VENV)/.nbops-core
FULL   := $(VENV)/.nbops-test

.PHONY: setup setup-test demo test bench clean

$(CORE): pyproject.toml package.json
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# jlpm (from jupyter-builder) builds the JupyterLab extension shipped in the package
	$(BIN)/pip install -q "jupyter-builder>=1.2,<2" "hatch-jupyter-builder>=0.9" hatchling
	$(BIN)/pip install -q -e ".[all,torch]"
	touch $@

$(FULL): $(CORE)
	$(BIN)/pip install -q -e ".[test,ray]"
	. $(BIN)/activate && bash .ci/install-lab.sh
	touch $@

setup: $(CORE)
setup-test: $(FULL)

demo: $(CORE)
	. $(BIN)/activate && cd example_notebooks && nbops graph churn.ipynb && nbops run churn.ipynb && nbops runs ls --notebook churn.ipynb

test: $(FULL)
	. $(BIN)/activate && jlpm test && python -m pytest -q

bench: $(FULL)
	. $(BIN)/activate && for b in benchmarks/bench_*.py; do echo "== $$b"; python $$b || exit 1; done

clean:
	rm -rf $(VENV) node_modules nbops/labextension labextension/lib example_notebooks/.nbops
