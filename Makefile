# `make book` and `make test` each set up what they need: a .venv with the project and its extras.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# cffconvert (the tests validate CITATION.cff with it) pins jsonschema<4, which the book's
# tools cannot use: it gets a virtual environment of its own inside .venv.
CFFCONVERT := $(VENV)/cffconvert/bin/cffconvert
# nbgrader (tests/test_assignments.py runs its generate_assignment on a source notebook)
# needs a Jupyter server stack that the book's tools do not: a virtual environment too.
NBGRADER := $(VENV)/nbgrader/bin/nbgrader

.PHONY: setup book pdf test test-kernels test-matrix serve bench notebooks assignments kits \
  mutation editions clean

setup: $(STAMP)

$(STAMP): pyproject.toml book/_ext/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,book,dicom,bench]' \
	  -e book/_ext
	test -x $(CFFCONVERT) || ($(PY) -m venv $(VENV)/cffconvert && \
	  $(VENV)/cffconvert/bin/python -m pip install -q --disable-pip-version-check 'cffconvert==2.0.0')
	test -x $(NBGRADER) || ($(PY) -m venv $(VENV)/nbgrader && \
	  $(VENV)/nbgrader/bin/python -m pip install -q --disable-pip-version-check 'nbgrader>=0.9.6,<0.10')
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest
	$(MAKE) test-kernels

# A seeded float32 training run is reproducible bit for bit only on one BLAS kernel, so the
# tests that train networks (marker `trains`) run again under two kernels that any x86-64
# CPU can run, forced before NumPy loads; the test summary header names the kernel that ran.
KERNELS := Sandybridge Haswell
test-kernels: $(STAMP)
	for kernel in $(KERNELS); do \
	  OPENBLAS_CORETYPE=$$kernel $(PY) -m pytest -m trains -p no:cacheprovider || exit 1; \
	done

# A strict build from clean: an incremental -W build can pass on pages it did not re-read.
# The PDFs of `make pdf` (_build/pdf) and the compiled slides of `make kits` (_build/kits)
# are kept: the site links the former and puts the latter into the kits when they are there.
book: $(STAMP)
	if [ -d _build ]; then find _build -mindepth 1 -maxdepth 1 ! -name pdf ! -name kits \
	  -exec rm -rf {} +; fi
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

# The PDF editions (instructor, student) into _build/pdf; needs TeX Live and says which
# Debian packages to install when they are missing (scripts/build_pdf.py).
pdf: $(STAMP)
	$(PY) scripts/build_pdf.py

# Preview the built site on this machine only.
serve:
	test -f _build/html/index.html || $(MAKE) book
	$(PY) -m http.server 8000 --bind 127.0.0.1 --directory _build/html

# Two editions on one site, as the release workflow publishes them: this tree's and the
# previous release's (its tag v<version>, or OLD=<commit>), each under its own folder with
# versions.json, labels.json, latest/ and a zip of each, in _build/editions; then
# python -m http.server --directory _build/editions. See scripts/editions.py.
editions: $(STAMP)
	$(PY) scripts/editions.py build $(if $(OLD),--old $(OLD))

# The plain-Jupyter chapter copies that Colab and Binder open (commit them).
notebooks: $(STAMP)
	$(PY) scripts/export_notebooks.py

# The student notebooks built from the chapters and the package (commit them). With
# SEED=<a number the students do not know>, also the teacher's nbgrader source versions
# (solutions, hidden tests on cases drawn from SEED) in _build/nbgrader/source/: never commit.
assignments: $(STAMP)
	$(PY) scripts/make_assignments.py $(if $(SEED),--seed $(SEED))

# The teacher kits' text parts into _build/kits/<NN>-<chapter>/: equations.tex (every
# labelled equation, numbered as in this release), references.bib (what it cites) and the
# beamer slides, slides.tex compiled to slides.pdf (TeX Live; about 15 s a chapter). Run it
# before `make book`, which puts the slides' PDFs into the kits' zips on the site.
kits: $(STAMP)
	$(PY) scripts/make_kits.py

# The speed benchmarks of issues 7, 12 and 13: layers, whole networks, optimisers and the
# deeper networks' layers against PyTorch when it is importable (results-local.json is for
# comparing machines; the committed benchmarks/results.json comes from a full run).
bench: $(STAMP)
	$(PY) benchmarks/bench.py --json benchmarks/results-local.json

# The package's tests (pytest -m "not book") on Python 3.10 to 3.13 and, on 3.10, with the
# lowest dependency versions pyproject.toml allows (uv --resolution lowest-direct), each in
# _build/matrix/<run>/; records the runs in book/tested_with.json and writes the intro page's
# "Tested with" line from them (then the intro's notebook copy: commit all three). Not part
# of `make test`: about half an hour.
# RUNS="py3.12 py3.10-lowest-direct" limits it to some runs.
test-matrix: $(STAMP)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[matrix]'
	$(PY) scripts/tested_with.py $(if $(RUNS),--runs $(RUNS)); status=$$?; \
	  $(PY) scripts/export_notebooks.py && exit $$status

# Mutation testing of the package (mutmut, the `mutation` extra), one module at a time in
# _build/mutation: not part of `make test` or CI; about 20 min on 2 busy cores.
# MODULES="optim model" limits it to some modules.
mutation: $(STAMP)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[mutation]'
	$(PY) scripts/mutation.py $(MODULES)

clean:
	rm -rf _build
