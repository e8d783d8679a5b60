# The two commands of the README: `make demo` and `make test` (ruff's lint, then the tests). Each builds .venv on first use
# (and again when setup.cfg or constraints.txt change), so a fresh clone needs nothing else.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# CPU build by default (CI and laptops). GPU users: see README, "GPU".
TORCH  ?= torch==2.13.0

.PHONY: demo test install clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11); set PYTHON=..." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,bench]'
	@touch $(STAMP)

demo: $(STAMP)
	NO_ALBUMENTATIONS_UPDATE=1 $(BIN)/semantica demo --output demo-out --overwrite

test: $(STAMP)
	$(BIN)/ruff check .
	NO_ALBUMENTATIONS_UPDATE=1 $(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) demo-out
