# The README's two commands: `make up` (the whole local estate) and `make test` (every test).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_PACKAGES := $(shell grep -v '^\#' .ci/apt-packages.txt)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: up test lint deps apt loadtest soak db-docs security-audit clean drill gameday release-drill \
	deploy-preview deploy smoke-remote rollout-status launch-loadtest edge-benchmark

up: deps
	$(BIN)/chatwizard up

test: deps
	$(BIN)/ruff check .
	$(BIN)/pytest $(PYTEST_ARGS)

lint: deps
	$(BIN)/ruff check .

deps: apt $(STAMP)  # apt first: the barman venv needs python3-venv and libpq-dev

$(STAMP): pyproject.toml setup.py constraints.txt constraints-checkov.txt constraints-barman.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of torch first: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	# The development build: the local estate and the load-test tools too (setup.py; the image has neither).
	CHATWIZARD_BUILD=development $(BIN)/pip install -q -c constraints.txt -e '.[local,estate,infra,dev]'
	# checkov pins its own dependencies (some clash with the app's): a venv of its own.
	$(PY) -m venv $(VENV)/tools
	$(VENV)/tools/bin/pip install -q -c constraints-checkov.txt checkov
	# barman-cloud runs as Postgres's own unprivileged user (archive_command): a venv on the system Python.
	/usr/bin/python3 -m venv $(VENV)/barman
	$(VENV)/barman/bin/pip install -q -c constraints-barman.txt 'barman[cloud]'
	touch $(STAMP)

apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# A load-test run with its report in loadtest/reports/ (loadtest/README.md): 10,000 users by default.
USERS ?= 10000
SCENARIO ?= load
RAMP ?= 5m
HOLD ?= 10m
# Learners pause 4-80 s between steps (x4 the k6 learner's): ~300 req/s from 10,000 users, what 2 cores carry.
THINK_SCALE ?= 4
loadtest: deps
	$(BIN)/python -m loadrun --scenario $(SCENARIO) --users $(USERS) --ramp $(RAMP) --hold $(HOLD) \
	  --think-scale $(THINK_SCALE)

# The web app's static-asset load time with and without the edge cache (nginx standing in for Cloudflare),
# in headless Chromium on two emulated learner links (phone, desktop) with the origin far away; needs the
# estate up (`make up`).
# Rewrites docs/performance/edge-cache.md (figures, assumptions). RUNS=n loads per case.
edge-benchmark: deps
	$(BIN)/python -m loadrun.edge_benchmark $(if $(RUNS),--runs $(RUNS))

# Memory over time: 45 minutes at a steady load; the report's RSS trend per hour is fitted over the last 30.
soak: deps
	$(BIN)/python -m loadrun --scenario soak --users $(or $(SOAK_USERS),2000) --ramp 2m --hold 45m \
	  --think-scale $(or $(SOAK_THINK_SCALE),1) --no-ladder

# Every disaster-recovery drill on throwaway estates (~8 minutes); the report: docs/reliability/drills.md.
drill: deps
	$(BIN)/chatwizard drill

# A game day: a fault at random in a throwaway estate; you follow the page to its runbook and fix it
# (FAULT=name to choose, SEED=n to repeat a draw). The run is appended to docs/reliability/gamedays.md.
gameday: deps
	$(BIN)/chatwizard gameday $(if $(FAULT),--fault $(FAULT)) $(if $(SEED),--seed $(SEED))

# The seed's 1,000 active users against the launch profile's one VM (ansible/README.md): the Ansible lab
# converged, then k6's load scenario through the VM's TLS edge, split across two load generators and
# merged. Needs root like tests/ansible. Figures and the reading: docs/launch-profile.md.
LAUNCH_RAMP ?= 2m
LAUNCH_HOLD ?= 5m
launch-loadtest: deps
	LAUNCH_USERS=1000 LAUNCH_RAMP=$(LAUNCH_RAMP) LAUNCH_HOLD=$(LAUNCH_HOLD) \
	  LAUNCH_REPORT=loadtest/reports/$$(date -u +%F)-launch-1000.json \
	  $(BIN)/pytest tests/ansible/launch_load.py -p no:cacheprovider

clean:
	rm -rf $(VENV) .estate .estate-perf .estate-drill .estate-gameday

# Query plans and the HNSW sweep on the load test's 100,000-video catalogue (docs/performance/).
db-docs: deps
	$(BIN)/python -m loadrun.dbdocs plans
	$(BIN)/python -m loadrun.dbdocs hnsw

# A deeper security audit against the running local estate (`make up` in another terminal):
# bandit, live headers, bounded sqlmap; findings in docs/security/audit.md.
security-audit: deps
	$(BIN)/chatwizard security-audit --key "$$($(BIN)/chatwizard keys create --email security-audit@example.com \
	  --tier pro --name audit | tail -1)"

# The canary release judged by k8s/base/analysis-template.yaml on the local estate (docs/reliability/release.md).
release-drill: deps
	$(BIN)/pytest tests/k8s/test_canary_release.py -s -p no:cacheprovider

# The release pipeline's deploy steps (.github/workflows/release.yml, docs/deploy.md), run on the deploy
# runner inside the VPC. DIGEST is the image's sha256:... digest built from the same commit; the stack's
# appImageDigest is that digest in the stack's own repository (infra/config.py checks both).
STACK ?= staging
DIGEST ?=
PULUMI_IMAGE = $(if $(DIGEST),--config \
	chatwizard:appImageDigest="$$(pulumi config get chatwizard:appImageRepository --stack $(STACK))@$(DIGEST)")
deploy-preview: deps
	pulumi preview --stack $(STACK) --policy-pack infra/policy --diff $(PULUMI_IMAGE)
deploy: deps
	pulumi up --yes --stack $(STACK) --policy-pack infra/policy $(PULUMI_IMAGE)
smoke-remote: deps
	$(BIN)/k6 run -e BASE_URL="$$(pulumi stack output api_url --stack $(STACK))" -e ADMIN_KEY="$$SMOKE_ADMIN_KEY" \
	  -e USERS=20 -e RAMP=10s -e HOLD=30s loadtest/k6/smoke.js
# First until the controller has seen the Deployment's new template (it notes the Deployment's generation
# on the Rollout), so the status is the new release's and not the one before.
rollout-status:
	kubectl -n chatwizard wait rollout/chatwizard --timeout 5m \
	  --for=jsonpath='{.metadata.annotations.rollout\.argoproj\.io/workload-generation}'="$$(\
	  kubectl -n chatwizard get deployment/chatwizard -o jsonpath='{.metadata.generation}')"
	kubectl -n chatwizard argo rollouts status chatwizard --timeout 30m
