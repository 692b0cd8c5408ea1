# `make demo` and `make test` each set up everything on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_LOGDIR ?= demo_logs
# Quieter TensorFlow: no C++ notices or version notes (Python errors still show); no GPU needed.
export TF_CPP_MIN_LOG_LEVEL ?= 3

.PHONY: demo test install clean bench fuzz

$(BIN)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[tensorflow-cpu,test]'
	touch $@

install: $(BIN)/.installed

# The replay's quick preset (reuses finished runs when DEMO_LOGDIR already holds them),
# the report of the run that dies (the negative initializer, 3 layers, the article's
# ReLU output) on the terminal, all runs' report as HTML.
DEMO_PRESET ?= quick
DEMO_REPORT_RUNS ?= relu-negative-d3-article-s0/train

demo: install
	$(BIN)/relu-doctor replay $(DEMO_LOGDIR) --preset $(DEMO_PRESET)
	$(BIN)/relu-doctor report $(DEMO_LOGDIR) --run '*/train' --format html -o $(DEMO_LOGDIR)/report.html
	$(BIN)/relu-doctor report $(DEMO_LOGDIR) --run '$(DEMO_REPORT_RUNS)'
	@echo "Tables: $(DEMO_LOGDIR)/summary.md   all runs' report: $(DEMO_LOGDIR)/report.html"

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

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
