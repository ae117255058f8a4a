# Python worker library (python/). A venv at .venv holds the package
# (editable) and the pinned test/codegen tools from python/requirements-test.txt;
# it is (re)installed only when pyproject.toml or the requirements change.

PYTHON ?= python3
VENV := $(CURDIR)/.venv
VENV_PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.snakepipe-python.stamp

TEST_TARGETS += test-python
GENERATE_TARGETS += generate-python
BENCH_TARGETS += bench-python

.PHONY: test-python generate-python bench-python python-venv

$(VENV_PY):
	$(PYTHON) -m venv $(VENV)

$(PY_STAMP): python/pyproject.toml python/requirements-test.txt | $(VENV_PY)
	$(VENV_PY) -m pip install --quiet --disable-pip-version-check -r python/requirements-test.txt
	$(VENV_PY) -m pip install --quiet --disable-pip-version-check --no-deps -e python
	touch $@

python-venv: $(PY_STAMP)

# Regenerates python/snakepipe/v1/ingest_pb2{,_grpc}.py(i) with the pinned
# grpcio-tools. The generated `from snakepipe.v1 import ingest_pb2` works
# because the package is named snakepipe and the modules live in snakepipe/v1.
generate-python: $(PY_STAMP)
	$(VENV_PY) -m grpc_tools.protoc -I proto \
		--python_out=python --pyi_out=python --grpc_python_out=python \
		proto/snakepipe/v1/ingest.proto

test-python: $(PY_STAMP)
	cd python && $(VENV_PY) -m pytest -q -p no:cacheprovider tests

bench-python: $(PY_STAMP)
	cd python && $(VENV_PY) bench/emit_bench.py
