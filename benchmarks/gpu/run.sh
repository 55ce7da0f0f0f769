#!/usr/bin/env bash
# GPU benchmark of the fused SE/eSE CUDA kernels. Run on a machine with an NVIDIA GPU, nvcc
# and a CUDA build of PyTorch (python3 -c 'import torch; print(torch.cuda.is_available())').
#   benchmarks/gpu/run.sh            builds libsekit against that PyTorch's libtorch, then
#                                    prints the table of gpu_driver.cpp
set -euo pipefail
cd "$(dirname "$0")/../.."
py="${SEKIT_PYTHON:-python3}"
build=target/native-build-cuda
cmake -S native -B "$build" -DCMAKE_BUILD_TYPE=Release -DSEKIT_PYTHON="$py" -DBUILD_TESTING=OFF
cmake --build "$build" -j"$(nproc)"
torchlib="$("$py" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
g++ -O2 -std=c++17 -I native/include benchmarks/gpu/gpu_driver.cpp -L "$build" -lsekit \
  -Wl,-rpath,"$PWD/$build:$torchlib" -o "$build/gpu_driver"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
"$build/gpu_driver"
