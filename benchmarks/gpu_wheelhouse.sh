#!/usr/bin/env bash
# Fill .whl/ (git-ignored) with the wheels bench_speed.py needs on the lent GPU machine and lacks there, and
# .bench/model-configs (git-ignored) with the model configs (../shared does not travel). Run here, in the
# repo's root; then carry [".whl", ".bench"] (see benchmarks/README.md, "GPU figures").
#
# That machine's image (benchmarks/README.md) has Python 3.12 with CUDA torch, transformers 5.17, numpy,
# Pillow, PyYAML, safetensors, huggingface_hub, filelock, regex, requests and zipp, but no diffusers, torchao
# or pydantic. The wheels are fetched without their dependencies (--no-deps): nothing here can pull a torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PLATFORMS=(
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64
)
WHEELS=(
  diffusers==0.42.1          # the pipelines and cache hooks (needs importlib_metadata)
  torchao==0.18.0            # int8dq and fp8
  transformers==5.23.0       # the project's pin (the machine's 5.17 is older than the tested code)
  importlib_metadata==10.2.0
  lazy-importer==0.1.0
  pydantic==2.14.4           # the adapters' options models
  pydantic_core==2.50.5
  annotated-types==0.8.0
  typing-inspection==0.4.5
)
rm -rf .whl
"$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]}" -d .whl "${WHEELS[@]}"
mkdir -p .bench
rm -rf .bench/model-configs
cp -r ../shared/model-configs .bench/model-configs
du -sh .whl .bench/model-configs
