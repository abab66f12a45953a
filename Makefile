# The two commands README leads with. Both bootstrap what they need on first use
# (./pants installs Pants and the pex tool into .bootstrap/) and are fast the second time.
PY39 := .bootstrap/venv/bin/python
RUFF_VERSION := 0.17.6
RUFF := .bootstrap/venv/bin/ruff
# The suite runs on worker processes (pytest-xdist from PyPI, pinned like ruff): most of it waits on
# subprocesses, pantsd, Docker and sockets, so 3 workers beat 2 on a 2-core machine. Tests that share an expensive
# session copy stay on one worker (tests/conftest.py, `--dist loadgroup`). `make test WORKERS=0` runs serially.
XDIST_VERSION := 3.8.0
EXECNET_VERSION := 2.1.2
WORKERS ?= 3
XDIST := $(if $(filter 0,$(WORKERS)),,-n $(WORKERS) --dist loadgroup --no-loadscope-reorder)
USER_ENV_STAMP := dist/export/python/virtualenvs/flyte/.stamp

.PHONY: demo test test-fast lint bootstrap test-deps user-env system-deps clean dist

demo: user-env
	bin/demo

# PYTHONDONTWRITEBYTECODE off for the run (Python's default): with it set, each of the suite's ~1,500 Python processes
# compiled every module it imported from source (pytest's assertion rewriting, the CLI, the runtime) again.
PYTEST := env -u PYTHONDONTWRITEBYTECODE PYTHONPATH=src/python $(PY39) -m pytest

test: lint test-deps user-env system-deps
	$(PYTEST) -q tests $(XDIST) $(PYTEST_ARGS)

# pyflakes + pycodestyle + isort over the code (config: pyproject.toml [tool.ruff]); ruff comes from PyPI into
# the bootstrapped venv, pinned.
lint: bootstrap
	@$(RUFF) --version 2>/dev/null | grep -qx "ruff $(RUFF_VERSION)" || \
		.bootstrap/venv/bin/pip install -q "ruff==$(RUFF_VERSION)" 2>&1 | grep -v '^WARNING: Location' >&2 || true
	$(RUFF) check src tests bench

# Developers' quick loop: everything but the tests marked `slow` (./pants, Docker, Bazel end to end;
# see tests/conftest.py). CI runs `make test`: all of them.
test-fast: test-deps user-env system-deps
	$(PYTEST) -q -m "not slow" tests $(XDIST) $(PYTEST_ARGS)

test-deps: bootstrap
	@$(PY39) -c 'import xdist, execnet; assert (xdist.__version__, execnet.__version__) == ("$(XDIST_VERSION)", "$(EXECNET_VERSION)")' 2>/dev/null || \
		.bootstrap/venv/bin/pip install -q "pytest-xdist==$(XDIST_VERSION)" "execnet==$(EXECNET_VERSION)" 2>&1 | grep -v '^WARNING: Location' >&2 || true

# Debian packages the tests drive for real: the OCI registry (docker-registry).
system-deps:
	@bash tests/support/install_registry.sh
	@bash tests/support/install_docker.sh
	@bash tests/support/install_bazel.sh

bootstrap:
	@PANTS_BOOTSTRAP_ONLY=1 ./pants

# The examples' own environment (CPython 3.11 + flytekit from examples/3rdparty/flyte.lock),
# re-exported only when the lockfile changes.
user-env: $(USER_ENV_STAMP)

$(USER_ENV_STAMP): examples/3rdparty/flyte.lock | bootstrap
	./pants --no-pantsd export --resolve=flyte
	touch $@

clean:
	-for p in .pids/*/pantsd/pid; do [ -f "$$p" ] && kill "$$(cat $$p)"; done; true
	rm -rf .bootstrap .pids dist

# The install artifacts: dist/wheels/flytebuild-<version>-py3-none-any.whl and the sdist (docs/adopt-*.md).
dist:
	bin/build-dist
