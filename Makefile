# `make demo` and `make test` each set up everything on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_LOGDIR ?= demo_logs
# Quieter TensorFlow: no C++ notices or version notes (Python errors still show); no GPU needed.
export TF_CPP_MIN_LOG_LEVEL ?= 3

.PHONY: demo test install browser clean bench fuzz

# torch goes first, on its own: alone, pip takes the CPU build (2.13.0+cpu, a local wheel here
# or TORCH_INDEX's); resolved with everything else it took PyPI's CUDA build (4 GB more).
$(BIN)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) 'torch==2.13.0'
	$(BIN)/python -m pip install --quiet $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) -e '.[tensorflow-cpu,jax,torch-cpu,test]'
	touch $@

install: $(BIN)/.installed

# Where pip finds the CPU wheel of torch when no local wheel folder has it (PyPI's is the CUDA build):
# make install TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=

# The replay's quick preset (reuses finished runs when DEMO_LOGDIR already holds them),
# every run's report as HTML, the report of a run that dies (3 ReLU layers on uniform(-1, 0)
# weights), that run beside the same network with LeakyReLU, and where to look next.
DEMO_PRESET ?= quick
DEMO_DIES ?= relu-negative-d3-s0
DEMO_FIXED ?= leaky_relu-negative-d3-s0

demo: install
	$(BIN)/relu-doctor replay $(DEMO_LOGDIR) --preset $(DEMO_PRESET)
	@$(BIN)/relu-doctor report $(DEMO_LOGDIR) --run '*/train' --format html -o $(DEMO_LOGDIR)/report.html
	@echo; echo "== The run that dies: relu-doctor report $(DEMO_LOGDIR) --run '$(DEMO_DIES)/train'"
	@$(BIN)/relu-doctor report $(DEMO_LOGDIR) --run '$(DEMO_DIES)/train'
	@echo; echo "== The same network with LeakyReLU: relu-doctor compare $(DEMO_LOGDIR) $(DEMO_DIES) $(DEMO_FIXED)"
	@$(BIN)/relu-doctor compare $(DEMO_LOGDIR) $(DEMO_DIES) $(DEMO_FIXED)
	@echo
	@echo "Every run, problems first, with liveness heatmaps: open $(abspath $(DEMO_LOGDIR))/report.html"
	@echo "Tables: $(DEMO_LOGDIR)/summary.md"
	@echo "The two runs in TensorBoard (then the RELU DOCTOR tab): $(BIN)/tensorboard --logdir_spec dies:$(DEMO_LOGDIR)/$(DEMO_DIES),fixed:$(DEMO_LOGDIR)/$(DEMO_FIXED)"

# Chromium for the browser test of the HTML report (tests/render/test_html_browser.py, which
# Playwright drives): Debian's package, installed only where it is missing (with sudo when not root).
CHROMIUM ?= /usr/bin/chromium

browser:
	@if [ ! -x $(CHROMIUM) ]; then \
		SUDO=; if [ "$$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi; \
		$$SUDO apt-get update && $$SUDO apt-get install -y --no-install-recommends chromium; \
	fi

# The whole suite on TensorFlow (tests/callback/test_backends_agree.py trains one model on all three
# backends and compares the events), then the callback's tests once per other backend: KERAS_BACKEND
# is fixed when keras is imported, so each backend is its own pytest process. Tests marked
# tensorflow_only (TensorFlow's custom train_step, its in-graph histogram op) run in the first only.
OTHER_BACKENDS ?= jax torch

test: install browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	@for backend in $(OTHER_BACKENDS); do \
		echo "== tests/callback on KERAS_BACKEND=$$backend"; \
		KERAS_BACKEND=$$backend $(BIN)/python -m pytest tests/callback -m "not tensorflow_only" $(PYTEST_ARGS) || exit 1; \
	done

# The structure-aware fuzz of the report at 10x the suite's cases.
fuzz: install
	RELU_DOCTOR_FUZZ_EXAMPLES=100000 $(BIN)/python -m pytest tests/events/test_fuzz_structure.py $(PYTEST_ARGS)

bench: install
	$(BIN)/python benchmarks/callback_overhead.py
	$(BIN)/python benchmarks/probe_cost.py
	$(BIN)/python benchmarks/report_speed.py
	$(BIN)/python benchmarks/resync_speed.py
	$(BIN)/python benchmarks/probe_modes.py
	$(BIN)/python benchmarks/real_networks_cost.py

clean:
	rm -rf $(VENV) $(DEMO_LOGDIR) *.egg-info .pytest_cache .hypothesis
