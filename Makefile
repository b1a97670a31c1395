# `make book` and `make test` each set up what they need: a .venv with the project and its extras.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup book test serve bench notebooks clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,book,dicom,bench]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

# A strict build from clean: an incremental -W build can pass on pages it did not re-read.
book: $(STAMP)
	rm -rf _build
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

# Preview the built site on this machine only.
serve:
	test -f _build/html/index.html || $(MAKE) book
	$(PY) -m http.server 8000 --bind 127.0.0.1 --directory _build/html

# The plain-Jupyter chapter copies that Colab and Binder open (commit them).
notebooks: $(STAMP)
	$(PY) scripts/export_notebooks.py

# The speed benchmarks of issues 7 and 12: layers, whole networks and optimisers against
# PyTorch when it is importable (results-local.json is for comparing machines; the committed
# benchmarks/results.json comes from a full run).
bench: $(STAMP)
	$(PY) benchmarks/bench.py --json benchmarks/results-local.json

clean:
	rm -rf _build
