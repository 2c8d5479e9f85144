# Task runner. `make test` is the one command that runs every check (the same one CI runs).
# `make help` lists the targets.

CARGO ?= cargo

.DEFAULT_GOAL := help
.PHONY: help demo fmt lint test rust-test python-test wheel wheel-check msrv bench bench-fleet doc test-k8s

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

demo: ## run the CLI's demo
	$(CARGO) run -q -p rollback-cli -- demo

fmt: ## format all Rust code
	$(CARGO) fmt --all

lint: ## cargo fmt --check, clippy -D warnings (workspace and rollback-py)
	scripts/test.sh lint

test: ## every check: lint, Rust tests (nextest + doctests), Python build + stubtest + pytest (+ Ansible fleet tests)
	scripts/test.sh

rust-test: ## Rust tests only (cargo nextest, or cargo test; then doctests)
	scripts/test.sh rust

python-test: ## build forge_rollback into .venv, run mypy.stubtest and pytest (incl. ansible/tests)
	scripts/test.sh python

wheel: ## portable release wheel (module + forge-rollback command; abi3, manylinux_2_28, via zig) in target/wheels
	scripts/wheel.sh

wheel-check: ## build the portable wheel, check its manylinux_2_28 tag with auditwheel, install and run it without Rust
	scripts/wheel.sh check

msrv: ## build-check the workspace with Rust at its declared rust-version (installs it with rustup; not in make test)
	scripts/msrv.sh

test-k8s: ## opt-in: the Kubernetes adapter against your cluster (FORGE_TEST_KUBECONFIG, FORGE_TEST_K8S_NAMESPACE, FORGE_TEST_K8S_DEPLOYMENT)
	@if [ -z "$$FORGE_TEST_KUBECONFIG" ] || [ -z "$$FORGE_TEST_K8S_NAMESPACE" ] || [ -z "$$FORGE_TEST_K8S_DEPLOYMENT" ]; then \
		echo "error: set FORGE_TEST_KUBECONFIG, FORGE_TEST_K8S_NAMESPACE and FORGE_TEST_K8S_DEPLOYMENT (a cluster you provide: kind, k3d, minikube or real; no local API server can be built here, see docs/platforms.md)" >&2; exit 2; fi
	$(CARGO) test -p rollback-core --test it live_kubernetes_read_only -- --nocapture

bench: ## benchmarks (scripts/bench.sh)
	@if [ -x scripts/bench.sh ]; then scripts/bench.sh; \
	else echo "error: benchmarks are not written yet (no scripts/bench.sh)" >&2; exit 1; fi

bench-fleet: ## fleet benchmark: the Ansible playbook on 4 hosts vs 1 (docs/PERFORMANCE.md, needs .venv: make python-test)
	$(CARGO) build -q -p rollback-cli
	$(if $(wildcard .venv/bin/python),.venv/bin/python,python3) scripts/bench/fleet.py

doc: ## API docs (target/doc)
	$(CARGO) doc --no-deps
