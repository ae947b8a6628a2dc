# The two commands a newcomer needs:  make run  (the product on the embedded Dataverse)
#                                     make test (every test)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: setup run test lint bench pack chromium redis nginx smtp

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

setup: $(STAMP)

# gunicorn, as in production (pure Python, installed by setup); `crmchat serve --dev` runs
# werkzeug's development server instead.
run: setup
	$(BIN)/crmchat serve

test: lint chromium redis nginx smtp
	$(BIN)/python -m pytest

# The browser tests (tests/browser) drive Debian's Chromium. Installed here when missing
# (CI runs as root); otherwise they fail and say so, unless CRMCHAT_SKIP_BROWSER_TESTS=1.
chromium:
	@command -v chromium >/dev/null 2>&1 || [ "$$CRMCHAT_SKIP_BROWSER_TESTS" = 1 ] || \
	if [ "$$(id -u)" = 0 ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	else \
		echo "chromium is missing: the browser tests will fail. Run 'sudo apt-get install chromium'" \
			"or set CRMCHAT_SKIP_BROWSER_TESTS=1." >&2; \
	fi

# The scale-out tests (and bench/live_primitives.py) start Debian's redis-server on a free
# port. Installed here when missing (CI runs as root), as chromium is; `make run` never
# needs it.
redis:
	@command -v redis-server >/dev/null 2>&1 || \
	if [ "$$(id -u)" = 0 ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server; \
	else \
		echo "redis-server is missing: the Redis tests will fail. Run" \
			"'sudo apt-get install redis-server'." >&2; \
	fi

# tests/test_proxy_nginx.py runs Debian's nginx in front of the service: installed here when
# missing, like chromium; otherwise that test fails and says so, unless
# CRMCHAT_SKIP_NGINX_TESTS=1.
nginx:
	@command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || [ "$$CRMCHAT_SKIP_NGINX_TESTS" = 1 ] || \
	if [ "$$(id -u)" = 0 ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y nginx; \
	else \
		echo "nginx is missing: the proxy test will fail. Run 'sudo apt-get install nginx'" \
			"or set CRMCHAT_SKIP_NGINX_TESTS=1." >&2; \
	fi

# The mail tests (tests/smtp_fixture.py) start Debian's aiosmtpd, an SMTP server that runs
# unprivileged on a free port. Installed here when missing, as redis-server is.
smtp:
	@command -v aiosmtpd >/dev/null 2>&1 || [ -x /usr/bin/aiosmtpd ] || \
	if [ "$$(id -u)" = 0 ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y python3-aiosmtpd; \
	else \
		echo "aiosmtpd is missing: the mail tests will fail. Run" \
			"'sudo apt-get install python3-aiosmtpd'." >&2; \
	fi

lint: setup
	$(BIN)/ruff check connector tests bench
	$(BIN)/ruff format --check --quiet connector tests bench
	$(BIN)/mypy

bench: setup redis
	$(BIN)/python bench/dataverse_requests.py
	$(BIN)/python bench/dataverse_vs_sqlite.py
	$(BIN)/python bench/chat_load.py --pairs 100
	$(BIN)/python bench/chat_load.py --pairs 500
	$(BIN)/python bench/chat_load.py --pairs 1000
	$(BIN)/python bench/chat_load.py --pairs 100 --server dev
	$(BIN)/python bench/console_cpu.py
	$(BIN)/python bench/widget_weight.py
	$(BIN)/python bench/live_primitives.py
	$(BIN)/python bench/server_workers.py --sockets 200 500
	$(BIN)/python bench/widget_wire.py
	$(BIN)/python bench/relay_scale.py --chats 500 2000 --modes echo 1 --presence 2000 \
		--presence-steps 2000 4000 8000
	# Visitors on one process, agents on another, over Redis: it says in one line
	# when this build's engine cannot do that yet (issue 7), and make goes on.
	-$(BIN)/python bench/relay_scale.py --chats 500 2000 --modes echo 2

pack: setup
	$(BIN)/crmchat solution pack
