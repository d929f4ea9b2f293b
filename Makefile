# softswitch: the two commands are `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Debian packages the real-peer tests and the benchmarks need: SIPp and Kamailio (peers and
# baseline), PulseAudio with PortAudio and ALSA's pulse plugin (the softphone's headset path
# on a null sink), wireguard-go and wireguard-tools (the home agent's VPN, end to end), and
# fonts for the softphone window's screenshots.
APT_PACKAGES := sip-tester kamailio pulseaudio pulseaudio-utils libportaudio2 libasound2-plugins \
	wireguard-go wireguard-tools iproute2 fonts-dejavu-core
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test bench lint typecheck check-config system-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/softswitch run -c configs/default.yaml

system-deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

lint: $(STAMP)
	$(VENV)/bin/ruff check softswitch media agent_client tests tools
	$(VENV)/bin/ruff format --check softswitch media agent_client tests tools
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy softswitch media agent_client

check-config: $(STAMP)
	$(VENV)/bin/softswitch check configs/default.yaml

test: $(STAMP) system-deps lint typecheck check-config
	$(VENV)/bin/pytest -q -p no:cacheprovider

bench: $(STAMP) system-deps
	$(PY) -m tools.bench
	$(PY) -m tools.bench.media_relay
	$(PY) -m tools.bench.routing
	$(PY) -m tools.bench.ivr
	$(PY) -m tools.bench.acd
	$(PY) -m tools.bench.agent_client

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
