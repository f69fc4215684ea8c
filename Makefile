# Two commands for a newcomer: `make run` (the service on its embedded defaults)
# and `make test` (every test). Both create the virtualenv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app wsgi

.PHONY: run test venv migrate worker web bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

migrate: venv
	$(FLASK) live db upgrade
	$(FLASK) live products sync

# Worker and gunicorn side by side; Ctrl-C stops both, and when one dies scripts/run.sh stops the other and says why.
run: migrate
	@bash scripts/run.sh

# Two pytest-xdist workers (tests/conftest.py xdist_scope keeps swarm and deploy tests in one worker each), then
# tests/reliability alone: it restarts the Docker engine under everything else. Both parts always run.
TEST_WORKERS ?= 2
test: venv
	@$(BIN)/python -m pytest -n $(TEST_WORKERS) --ignore=tests/reliability; first=$$?; \
	$(BIN)/python -m pytest tests/reliability; second=$$?; \
	if [ $$first -ne 0 ] || [ $$second -ne 0 ]; then exit 1; fi

# Figures of docs/BENCHMARKS.md against same-run baselines (~25 min; needs Docker, wrk, docker-compose).
bench: venv
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache
