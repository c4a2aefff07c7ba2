# gvatheory: `make figures` regenerates every figure, `make test` runs the tests.
# Both create (or reuse) .venv and install the package into it; nothing else is needed but Python 3.11 + pip.
#   make figures [SCALE=smoke|quick|paper] [NB="02 03"] [SEED=0] [JOBS=2]
#   make figures SCALE=paper GPU=1     # on a CUDA machine: installs JAX's CUDA 12 build first
#   make figures SCALE=paper NB=12 TASKS="Walker2d-v5" JOBS=16   # 11/12 on some locomotion tasks (other tasks' claims kept), 16 seeds at once
#   make experts [EXPERTS="Hopper-v5 Walker2d-v5"]   # TD3 experts for notebook 11's locomotion suite (~1 h each on 2 cores; resumable)
#   make stability [SCALE=quick] [NB="04 10 11"]   # a second build with the tests' XLA flag; the ledger marks verdicts that moved
#   make book [SCALE=quick]        # the executed notebooks of the last build as a static HTML site, build/<scale>/book/
#   make test | make lab | make clean (keeps trained experts) | make clean-experts (deletes them too)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
SCALE  ?= quick
SEED   ?= 0
NB     ?=
TASKS  ?=
JOBS   ?= 2
EXPERTS ?= Hopper-v5 Walker2d-v5
GPU    ?= 0
STAMP  := $(VENV)/.installed-$(GPU)

.PHONY: figures stability book test lab clean clean-experts venv experts

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
ifeq ($(GPU),1)
	$(PY) -m pip install --quiet --upgrade "jax[cuda12]"
endif
	rm -f $(VENV)/.installed-*
	touch $@

figures: $(STAMP)
	$(PY) -m gvatheory.infra.execute --scale $(SCALE) --seed $(SEED) --jobs $(JOBS) $(if $(NB),--only $(NB),) $(if $(TASKS),--tasks $(TASKS),)

# the same programs compiled without LLVM optimisation (what the tests use): rounded differently in the last bits,
# and slower to run (execution-bound notebooks take 2-3x as long). The flag is part of every cache key, so its results
# never mix with the default build's; they go to their own build folder. NB= checks some notebooks only (the others read
# "not in the other build").
XLA0 := build/$(SCALE)-xla0
stability: $(STAMP)
	XLA_FLAGS=--xla_backend_optimization_level=0 \
	  $(PY) -m gvatheory.infra.execute --scale $(SCALE) --seed $(SEED) --jobs $(JOBS) --out-dir $(XLA0) --fig-dir $(XLA0)/figures --no-ledger \
	  $(if $(NB),--only $(NB),)
	$(PY) -m gvatheory.infra.ledger --scale $(SCALE) --compare $(XLA0)/claims

book: $(STAMP)
	$(PY) -m gvatheory.infra.book --scale $(SCALE)

experts: $(STAMP)
	$(PY) -m gvatheory.control.rl --task $(EXPERTS)

test: $(STAMP)
	$(PY) -m pytest -q -n 3 --durations=12 tests  # 3 workers on 2 cores: the smoke runs leave a core idle while kernels start and compile

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root,)  # a root user in a container too

# results are cheap to recompute; trained experts (.cache/experts/, an hour each) are not: clean keeps them
clean:
	rm -rf build
	find .cache -mindepth 1 -maxdepth 1 ! -name experts -exec rm -rf {} + 2>/dev/null || true

clean-experts: clean
	rm -rf .cache
