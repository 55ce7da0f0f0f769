#!/usr/bin/env bash
# Where sekit's training step of ese_vovnet19b_dw goes, by ATen operator (train_ops.cpp under
# libtorch's profiler, summed by train_ops.py). Run after ./sekit test or mvn package.
#   benchmarks/quick/train_ops.sh [threads]
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p benchmarks/target
g++ -O2 -std=c++17 -I native/include -I /usr/include/torch/csrc/api/include benchmarks/quick/train_ops.cpp \
  -L target/native-build -lsekit -ltorch -ltorch_cpu -lc10 -Wl,-rpath,"$PWD/target/native-build" \
  -o benchmarks/target/train_ops
OMP_WAIT_POLICY=passive benchmarks/target/train_ops benchmarks/target/train_ops.json "${1:-2}"
/usr/bin/python3 benchmarks/quick/train_ops.py benchmarks/target/train_ops.json 3
