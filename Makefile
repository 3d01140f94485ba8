# make run   set up (venv, install, migrate) and serve on http://127.0.0.1:4000, embedded defaults
# make test  the test suite (SQLite and in-process backends, or DATABASE_URL/REDIS_URL when set)
# make bench the benchmark against a fixed-answer upstream (bench/README.md)

VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 4000

# The embedded default: SQLite under var/, in-process cache and counters, Celery eager.
# DEBUG=1 lets it run without SECRET_KEY / GATEWAY_ENCRYPTION_KEY; never use it in production.
RUN_ENV := DEBUG=$${DEBUG:-1} GATEWAY_MASTER_KEY=$${GATEWAY_MASTER_KEY:-sk-dev-master-key}

.PHONY: run test bench venv migrate clean

$(VENV)/.installed: pyproject.toml constraints.txt
	@PYTHON_BIN=$$(scripts/find-python) && echo "Using $$PYTHON_BIN" && \
		{ [ -x $(PY) ] || $$PYTHON_BIN -m venv $(VENV); }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $@

venv: $(VENV)/.installed

migrate: venv
	$(RUN_ENV) $(PY) manage.py migrate --noinput

run: migrate
	@echo ""
	@echo "  Gateway:  http://$(HOST):$(PORT)/v1   (OpenAI-compatible; master key: $${GATEWAY_MASTER_KEY:-sk-dev-master-key})"
	@echo "  Admin:    http://$(HOST):$(PORT)/admin/"
	@echo "            log in after '$(PY) manage.py createsuperuser',"
	@echo "            or start with GATEWAY_ADMIN_USER=... GATEWAY_ADMIN_PASSWORD=... make run"
	@echo "  Keys:     $(PY) manage.py create_key --alias me"
	@echo ""
	$(RUN_ENV) $(PY) manage.py serve --host $(HOST) --port $(PORT)

test: venv
	$(PY) -m pytest

bench: venv
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) var .pytest_cache
