#!/usr/bin/env bash
# Quick side-by-side timings, sekit from Java next to PyTorch eager in Python with the
# same thread count (both on the same libtorch), for what the JMH suite (benchmarks/run.sh)
# does not cover. Run after ./sekit test or mvn package.
#   benchmarks/quick/run.sh [threads]
#   1. ese_vovnet19b_dw forward at batch 1 and 8, 224x224, f32, eval, no grad, with the
#      peak resident memory of each process
#   2. training throughput of the Fashion-MNIST demo network (200 steps, batch 128); PyTorch
#      both in its default NCHW layout and in channels-last (sekit's default)
set -euo pipefail
cd "$(dirname "$0")/../.."
threads="${1:-2}"
java="${SEKIT_JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}/bin/java"
cp="target/classes:$(cat target/classpath.txt)"
/usr/bin/python3 benchmarks/quick/vovnet_timing.py "$threads"
"$java" --enable-native-access=ALL-UNNAMED -cp "$cp" benchmarks/quick/VoVNetTiming.java "$threads"
/usr/bin/python3 benchmarks/quick/train_timing.py "$threads" 200 ese nchw
/usr/bin/python3 benchmarks/quick/train_timing.py "$threads" 200 ese cl
"$java" --enable-native-access=ALL-UNNAMED -cp "$cp" benchmarks/quick/TrainTiming.java "$threads" 200 ese
