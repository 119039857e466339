# Thin aliases: the real commands live in scripts/ and Cargo.
.PHONY: test lint fmt build demo simulator tools chaos bench

test:
	./scripts/test

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

build:
	cargo build --release

demo:
	cargo run --release -- local -f examples/

simulator:
	cargo run --release -- simulator --seed simulator/seed.yaml

tools:
	./scripts/install-test-tools

# The fault campaign at full size: three seeds under each set of simulator switches.
chaos:
	SENDCONNECTOR_CHAOS=full cargo test --release --test chaos -- --nocapture

# The convergence benchmark (README, Performance): release build, 15 to 25 minutes in full;
# BENCH_ONLY=S,L,XL,rest,fairness,idle and BENCH_RUNS=N narrow it.
bench:
	cargo bench --bench convergence
