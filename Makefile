# The single entry point for every check; CI calls these same targets.
#   make demo   bring up the demo lab (installs what it needs)
#   make test   the whole test suite (needs root: namespaces, BPF)
#   make lint   rustfmt --check, clippy -D warnings, clang-format of the BPF C,
#               rustdoc -D warnings, cargo deny (licenses, bans, sources)
#   make fuzz-build / make fuzz   the fuzz targets on stable (scripts/fuzz.sh)
#   make bench  every benchmark; one `BENCH <name> <value> <unit>` line per figure
#   make bench-smoke  each benchmark once at small sizes (CI): fails when a
#               bench fails or a figure is missing
#   make deb    the Debian package (target/debian/)

CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: all deps build demo test test-deb deb lint fmt bench bench-build bench-smoke clean

all: build

deps:
	@bash scripts/deps.sh

build: deps
	$(CARGO) build --workspace --all-targets

demo: deps
	$(CARGO) build --release -p edge-daemon -p edged-testlab --bins
	$(CARGO) run --release -q -p edged-testlab --bin edged-lab -- demo

test: deps
	$(CARGO) build --locked --workspace --bins
	$(CARGO) test --locked --workspace --lib --bins --tests -- --test-threads=$${TEST_THREADS:-4}
	bash scripts/test-deb.sh

# Build, install, check and purge the Debian package on this machine.
test-deb: deps
	bash scripts/test-deb.sh

# target/debian/edged_<version>_<arch>.deb
deb: deps
	bash scripts/build-deb.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	clang-format --dry-run -Werror ebpf/bpf/*.c ebpf/bpf/*.h
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --locked --no-deps --workspace
	$(CARGO) deny --locked check licenses bans sources

fmt:
	$(CARGO) fmt --all

bench-build:
	$(CARGO) bench --locked --workspace --no-run

bench: deps
	@bash scripts/bench.sh

bench-smoke: deps
	@BENCH_SMOKE=1 bash scripts/bench.sh

clean:
	$(CARGO) clean

.PHONY: fuzz-build fuzz
fuzz-build:
	bash scripts/fuzz.sh build

# Each fuzz target for FUZZ_SECONDS (default 20).
fuzz:
	bash scripts/fuzz.sh run $(FUZZ_SECONDS)
