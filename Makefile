# Lucida: `make run` opens the GUI on the demo, `make test` runs the whole suite.
# Both set up .venv from nothing; `make venv` is idempotent and fast when nothing changed.
# `make venv` also installs the few system packages the tests use (.ci/system-packages: Qt's
# libraries and poppler-utils), with apt, only where they are missing.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv system run test bench lint demo-models docs docs-serve

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

system:
	./.ci/system-packages

venv: system $(STAMP)

run: venv docs
	$(BIN)/python main.py --demo

test: venv
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q
	$(BIN)/lint-imports
	$(BIN)/ruff check .

bench: venv
	QT_QPA_PLATFORM=offscreen $(BIN)/python bench/run_all.py

# The documentation site, built offline into site/ (Help ▸ User guide opens it).
docs: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

docs-serve: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

lint: venv
	$(BIN)/lint-imports
	$(BIN)/ruff check .

demo-models: venv
	$(BIN)/python tools/train_demo_models.py
	$(BIN)/python tools/train_demo_vit.py
	$(BIN)/python tools/train_demo_seg.py
	$(BIN)/python tools/train_demo_3d.py
