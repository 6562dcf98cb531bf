# The suite's commands. On a fresh machine: `make demo`, then `make test`.
# Every target installs what it needs first (into .venv, pinned by constraints.txt).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
SUITE := $(PY) -m tasks.cli
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

SEEDS ?= 0
NPROC ?= 1
ARGS ?=
# Where every command reads and writes results (runs/, sweeps/, tables/, figures/, report.html);
# passed on only when it is not the commands' own default.
RESULTS ?= results
RESULTS_FLAG = $(if $(filter-out results,$(RESULTS)),--results $(RESULTS))
# The demo's phases as a fraction of each task's stand-in recipe, chosen so that every baseline
# has visibly learned (measured on a clean clone, seed 0): at 0.6 the ResNet-18 baseline stopped at
# 41.7 % top-1 error and the captioner wrote 74 distinct captions for 300 test images, so both run
# their full recipe; speech at 0.6 (3 of its 5 baseline epochs) reaches 37.7 % WER.
DEMO_SCALE_IMAGENET ?= 1
DEMO_SCALE_FLICKR8K ?= 1
DEMO_SCALE_WSJ ?= 0.6
# Run the suite directly, or under torchrun when NPROC > 1 (DDP; multi-node: pass torchrun
# flags yourself, see README).
ifeq ($(NPROC),1)
RUN := $(SUITE)
else
RUN := $(VENV)/bin/torchrun --standalone --nproc_per_node=$(NPROC) -m tasks.cli
endif

# The paper's studies, one target each: <task>-<arch> runs `run <task> --arch <arch>`, but for
# the two whose flags differ (STUDY_<target>, below).
TASK_TARGETS := imagenet-resnet18 imagenet-resnet50 imagenet-vgg16 imagenet-googlenet \
	imagenet-alexnet imagenet-squeezenet imagenet-vit_b_16 imagenet-convnext_tiny \
	flickr8k-captioning wsj-deepspeech wsj-deepspeech2
.PHONY: help install test lint bench demo paper tables figures report standin-study sweep-imagenet-resnet18 \
	ablations-imagenet-resnet18 rivals-imagenet-resnet18 $(TASK_TARGETS)

help:
	@echo "make demo      install, build the stand-in data, run every task's study, print the tables"
	@echo "make test      the test suite"
	@echo "make lint      ruff"
	@echo "make bench     engine benchmarks (results/bench/)"
	@echo "make tables    regenerate results/tables/ from results/runs/"
	@echo "make report    tables, figures, then one self-contained page: results/report.html"
	@echo "make paper     the paper's Table 1 (seven studies) over SEEDS, launched by LAUNCHER=local|slurm"
	@echo "               (PARALLEL=N runs at once with local; LAUNCH_ARGS='--partition gpu ...' for slurm),"
	@echo "               then the tables and results/report.html; on the stand-ins where no dataset is set"
	@echo "make standin-study   every task's study on its stand-in, seeds 0,1,2, then the tables"
	@echo "make sweep-imagenet-resnet18 | ablations-imagenet-resnet18 | rivals-imagenet-resnet18   beyond the paper"
	@echo "make <study>   a study (baseline, DSD, dense control), <study> one of:"
	@echo "$(TASK_TARGETS)" | fmt -w 86 | sed 's/^/   /'
	@echo "   each on IMAGENET_DIR / FLICKR8K_DIR / WSJ_DIR or LIBRISPEECH_DIR when set, else on the"
	@echo "   task's stand-in; SEEDS=0,1,2 NPROC=8 ARGS='--epochs-scale 0.5' (dsd-suite run <task> --help)"

install: $(STAMP)

# Re-runs only when the venv is missing or the pins / project metadata changed.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check dsd tasks tests examples
	$(PY) -m ruff format --check dsd tasks tests examples

tables: $(STAMP)
	$(SUITE) tables --results $(RESULTS)

figures: $(STAMP)
	$(SUITE) figures --results $(RESULTS)

report: $(STAMP)
	$(SUITE) report --results $(RESULTS)

bench: $(STAMP)
	$(PY) -m dsd.bench.engine
	$(PY) -m dsd.bench.loop
	$(PY) -m dsd.bench.agreement
	$(PY) -m dsd.bench.fsdp
	$(PY) -m dsd.bench.lock
	$(SUITE) bench imagenet

# ---------------------------------------------------------------- the paper's studies
# Each runs baseline -> DSD and the equal-length dense control. The real dataset comes from
# the environment variable (read by the CLI); without it, the stand-in (with a banner).
# SqueezeNet's torchvision name is squeezenet1_0; the captioner has one model, so no --arch.
STUDY_imagenet-squeezenet := imagenet --arch squeezenet1_0
STUDY_flickr8k-captioning := flickr8k
$(TASK_TARGETS): %: $(STAMP)
	$(RUN) run $(or $(STUDY_$*),$(subst -, --arch ,$*)) --seeds $(SEEDS) $(ARGS) $(RESULTS_FLAG)

# ---------------------------------------------------------------- the paper's Table 1, launched
# Every study of Table 1 over SEEDS as jobs (dsd-suite launch): LAUNCHER=local runs PARALLEL of
# them at once on this machine, LAUNCHER=slurm submits them (LAUNCH_ARGS: --partition, --account,
# --gpus-per-run, --time, ...; see docs/cluster.md); `status --wait` then waits for the last job,
# and the report rebuilds the tables and results/report.html. Relaunching reuses finished runs.
# On a stand-in each study runs at PAPER_SCALE_<study> or PAPER_SCALE_<task> of its recipe (real
# data: the full recipe): imagenet and flickr8k in full but VGG-16 (11x ResNet-18's time per
# image at the stand-in's 32 px) at half, speech at 0.6 as in the demo, so that the seven studies
# of one seed take about half an hour on 2 CPU cores (README, Benchmarks). --deterministic: CPU runs
# resume bit-identically; --threads 1: every run on one intra-op thread whichever launcher gives it
# which cores (the thread count changes a CPU run's last bits), so both launchers give the same
# numbers and PARALLEL=2 uses 2 cores (PAPER_ARGS= on GPUs).
LAUNCHER ?= local
PARALLEL ?= 1
LAUNCH_ARGS ?=
PAPER_ARGS ?= --deterministic --threads 1
PAPER_STUDIES := imagenet-resnet18 imagenet-resnet50 imagenet-vgg16 imagenet-googlenet \
	flickr8k-captioning wsj-deepspeech wsj-deepspeech2
PAPER_SCALE_imagenet ?= 1
PAPER_SCALE_imagenet-vgg16 ?= 0.5
PAPER_SCALE_flickr8k ?= 1
PAPER_SCALE_wsj ?= 0.6
PAPER_DATA_imagenet = $(IMAGENET_DIR)
PAPER_DATA_flickr8k = $(FLICKR8K_DIR)
PAPER_DATA_wsj = $(WSJ_DIR)$(LIBRISPEECH_DIR)
LAUNCH_local = --parallel $(PARALLEL)
paper_task = $(firstword $(subst -, ,$(1)))
paper_scale = $(if $(PAPER_DATA_$(call paper_task,$(1))),,--epochs-scale $(or $(PAPER_SCALE_$(1)),$(PAPER_SCALE_$(call paper_task,$(1)))))
define paper_launch
	$(SUITE) launch $(or $(STUDY_$(1)),$(subst -, --arch ,$(1))) --seeds $(SEEDS) --results $(RESULTS) \
		$(call paper_scale,$(1)) $(PAPER_ARGS) --no-tables --launcher $(LAUNCHER) $(LAUNCH_$(LAUNCHER)) $(LAUNCH_ARGS) $(ARGS)

endef
paper: $(STAMP)
	$(foreach study,$(PAPER_STUDIES),$(call paper_launch,$(study)))
	$(SUITE) status --results $(RESULTS) --wait
	$(SUITE) report --results $(RESULTS)

# ---------------------------------------------------------------- beyond the paper
# Every task's study on its stand-in with three seeds, then the tables and figures: the README's
# stand-in table, with confidence intervals over the paired seeds.
standin-study: SEEDS := 0,1,2
standin-study: $(STAMP)
	$(STANDIN) $(RUN) run imagenet --arch resnet18 --seeds $(SEEDS) --no-tables $(ARGS) $(RESULTS_FLAG)
	$(STANDIN) $(RUN) run flickr8k --seeds $(SEEDS) --no-tables $(ARGS) $(RESULTS_FLAG)
	$(STANDIN) $(RUN) run wsj --arch deepspeech --seeds $(SEEDS) --no-tables $(ARGS) $(RESULTS_FLAG)
	$(SUITE) tables --results $(RESULTS)
	$(SUITE) figures --results $(RESULTS)

# DSD at several sparsities from one shared baseline, chosen on validation (dsd-suite sweep --help).
SPARSITIES ?= 0.1,0.3,0.5,0.7
sweep-imagenet-resnet18: $(STAMP)
	$(RUN) sweep imagenet --arch resnet18 --sparsities $(SPARSITIES) --seeds $(SEEDS) $(ARGS) $(RESULTS_FLAG)

# DSD beside its ablations (a random mask; re-initialised instead of zero at re-dense; the whole
# optimizer state reset at re-dense) and the control.
ablations-imagenet-resnet18: $(STAMP)
	$(RUN) run imagenet --arch resnet18 --method all-ablations --seeds $(SEEDS) $(ARGS) $(RESULTS_FLAG)

# DSD beside AC/DC (alternating sparse and dense phases, as long, from the same baseline) and the
# control, over two seeds; --acdc in ARGS sets AC/DC's phases (dsd-suite run imagenet --help).
rivals-imagenet-resnet18: SEEDS := 0,1
rivals-imagenet-resnet18: $(STAMP)
	$(RUN) run imagenet --arch resnet18 --method rivals --seeds $(SEEDS) $(ARGS) $(RESULTS_FLAG)

# ---------------------------------------------------------------- the demo
# Every task on its stand-in, at a lighter scale than the per-task targets so that the whole
# demo fits in about 10 minutes on 2 CPU cores; then the tables.
DEMO_RESULTS ?= $(RESULTS)
STANDIN := IMAGENET_DIR= FLICKR8K_DIR= WSJ_DIR= LIBRISPEECH_DIR=
demo: $(STAMP)
	@echo "== make demo: every task on its stand-in data, at DEMO scale (speech with shorter phases than make wsj-deepspeech) =="
	$(STANDIN) $(SUITE) run imagenet --arch resnet18 --epochs-scale $(DEMO_SCALE_IMAGENET) --results $(DEMO_RESULTS) --no-tables
	$(STANDIN) $(SUITE) run flickr8k --epochs-scale $(DEMO_SCALE_FLICKR8K) --results $(DEMO_RESULTS) --no-tables
	$(STANDIN) $(SUITE) run wsj --arch deepspeech --epochs-scale $(DEMO_SCALE_WSJ) --results $(DEMO_RESULTS) --no-tables
	$(SUITE) tables --results $(DEMO_RESULTS)
	$(SUITE) report --results $(DEMO_RESULTS)
	@echo "== demo done: stand-in results (not the paper's data) in $(DEMO_RESULTS)/tables and $(DEMO_RESULTS)/figures =="
	@echo "== the report page (tables and figures in one file; open it in a browser): $(DEMO_RESULTS)/report.html =="
