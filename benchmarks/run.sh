#!/usr/bin/env bash
# Runs the benchmark suite and regenerates benchmarks/results/{results.md, chart.png, *.json}.
#   benchmarks/run.sh [--quick] [THREADS]      (default 2 threads; --quick: short smoke run)
# In one run, side by side with the same thread count: JMH from Java (fused kernels and the
# libtorch composition), a C++ driver calling the shim directly, PyTorch eager in Python on
# the same libtorch, and the memory-copy bandwidth that gives the floor. Benchmarks print
# numbers; they never fail a build.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=""
if [[ "${1:-}" == "--quick" ]]; then quick=quick; shift; fi
threads="${1:-2}"
export JAVA_HOME="${SEKIT_JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}"
out=benchmarks/results
mkdir -p "$out" benchmarks/target

mvn -B -ntp -q -DskipTests install
(cd benchmarks && mvn -B -ntp -q package)
gcc -shared -fPIC -O2 -I"$JAVA_HOME/include" -I"$JAVA_HOME/include/linux" benchmarks/jni/noop.c \
  -o benchmarks/target/libnoop_jni.so
g++ -O2 -std=c++17 -I native/include benchmarks/driver/block_driver.cpp -L target/native-build -lsekit \
  -Wl,-rpath,"$PWD/target/native-build" -o benchmarks/target/block_driver

if [[ -n "$quick" ]]; then jmh=(-wi 1 -w 200ms -i 2 -r 300ms -f 1); else jmh=(-wi 3 -w 1s -i 5 -r 1s -f 1); fi
jvm="--enable-native-access=ALL-UNNAMED -Dsekit.threads=$threads -Dsekit.bench.jni=$PWD/benchmarks/target/libnoop_jni.so"
echo "== JMH (Java -> sekit)"
"$JAVA_HOME/bin/java" $jvm -jar benchmarks/target/benchmarks.jar -jvmArgsAppend "$jvm" \
  -rf json -rff "$out/jmh.json" "${jmh[@]}" "dev.sekit.bench.*" | grep -E "^(Benchmark|[A-Z][a-zA-Z]+Bench\.)" || true
echo "== C++ driver"
benchmarks/target/block_driver "$threads" $quick | tee "$out/driver.json"
echo "== PyTorch eager"
/usr/bin/python3 benchmarks/python/eager.py "$threads" $quick | tee "$out/eager.json"
machine="$(nproc) cores of $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $threads threads, libtorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)')"
"$JAVA_HOME/bin/java" -Djava.awt.headless=true -cp benchmarks/target/benchmarks.jar dev.sekit.bench.Report "$out" "$machine"
echo "wrote $out/results.md and $out/chart.png"
