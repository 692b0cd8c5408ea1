# `make demo` and `make test` each set up everything on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_LOGDIR ?= demo_logs
# Quieter TensorFlow start-up; nothing here needs a GPU.
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test install clean bench

$(BIN)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[tensorflow-cpu,test]'
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/python -m keras_relu_doctor.demo $(DEMO_LOGDIR)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/python benchmarks/callback_overhead.py

clean:
	rm -rf $(VENV) $(DEMO_LOGDIR) *.egg-info .pytest_cache .hypothesis
