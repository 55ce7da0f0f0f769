#!/usr/bin/env bash
# Quick side-by-side timing of one SE forward (N=32, C=256, 56x56, f32): sekit from Java
# next to PyTorch eager in Python, same thread count. Run after ./sekit test or mvn package.
#   benchmarks/quick/run.sh [threads]
set -euo pipefail
cd "$(dirname "$0")/../.."
threads="${1:-2}"
java="${SEKIT_JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}/bin/java"
/usr/bin/python3 benchmarks/quick/se_timing.py "$threads"
"$java" --enable-native-access=ALL-UNNAMED -cp "target/classes:$(cat target/classpath.txt)" \
  benchmarks/quick/SeTiming.java "$threads"
