# JobMon: `make demo` runs a local server, a sample job and real queries;
# `make test` runs the whole test suite.  Both set up .venv on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-cluster test test-slurm venv bench clean redis-server browser

venv: $(STAMP)

# A plain (non-editable) install, as sites do: it is the path that exposes
# the twistd plugins.  Re-run when the sources change.
$(STAMP): pyproject.toml $(shell find jobmon twisted -name '*.py' 2>/dev/null)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q '.[test]'
	rm -rf build *.egg-info
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python demo/run_demo.py

# Two servers sharing jobs through a Redis (installed from Debian if missing).
demo-cluster: $(STAMP) redis-server
	$(BIN)/python demo/run_cluster_demo.py

test: $(STAMP) redis-server browser
	$(BIN)/python -m twisted.trial --temp-directory=_trial_temp $(TRIAL_ARGS) tests

# Debian's redis-server for the tests of the store in Redis, installed when
# missing and root (they start their own servers; no service is started).
redis-server:
	@sh tests/install-redis-server.sh

# Debian's headless Chromium, chromium-driver and the NSS tools for the
# browser tests (tests/browser/), installed when missing and root.
browser:
	@sh tests/install-browser.sh

# JobMon under a real Slurm on this machine (Debian, as root): installs
# slurm-wlm and munge if missing, runs a one-node cluster on 127.0.0.1 and
# submits examples/slurm-job.sh.  Not part of `make test`.
test-slurm: $(STAMP)
	$(BIN)/python tests/slurm/run_slurm_test.py

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info _trial_temp* demo-run demo-cluster-run bench/out
