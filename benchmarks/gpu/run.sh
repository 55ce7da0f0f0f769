#!/usr/bin/env bash
# GPU benchmark: host<->device copies and the fused SE/eSE CUDA kernels through the C ABI
# (gpu_driver.cpp), then timm's SE/eSE modules in PyTorch, eager and compiled (torch_se.py).
# Run on a machine with an NVIDIA GPU, nvcc and a CUDA build of PyTorch.
#   benchmarks/gpu/run.sh              builds libsekit against that PyTorch's libtorch
#                                      (extra CMake arguments in SEKIT_CMAKE_ARGS), then runs both
#   benchmarks/gpu/run.sh --no-build   uses the libsekit already built (benchmarks/gpu/device.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
py="${SEKIT_PYTHON:-python3}"
build=target/native-build-cuda
if [[ ${1:-} != --no-build ]]; then
  # shellcheck disable=SC2086
  cmake -S native -B "$build" -DCMAKE_BUILD_TYPE=Release -DSEKIT_PYTHON="$py" -DBUILD_TESTING=OFF ${SEKIT_CMAKE_ARGS:-}
  cmake --build "$build" -j"$(nproc)"
fi
torchlib="$("$py" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
g++ -O2 -std=c++17 -I native/include benchmarks/gpu/gpu_driver.cpp -L "$build" -lsekit \
  -Wl,-rpath,"$PWD/$build:$torchlib" -o "$build/gpu_driver"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
"$build/gpu_driver"
"$py" benchmarks/gpu/torch_se.py
