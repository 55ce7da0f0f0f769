#!/usr/bin/env bash
# Runs the benchmark suite and regenerates benchmarks/results/{results.md, chart.png, *.json}.
#   benchmarks/run.sh [--quick] [--spin] [--networks] [THREADS]
#   (default 2 threads; --quick: short smoke run; --networks: only the whole-network and
#   training rows, keeping the block results of the last full run)
# In one run, side by side with the same thread count: JMH from Java (fused kernels and the
# libtorch composition), a C++ driver calling the shim directly, PyTorch eager in Python on
# the same libtorch, and the memory-copy bandwidth that gives the floor; then whole networks
# (benchmarks/net): ese_vovnet19b_dw and ese_vovnet39b forward at batch 1 and 8 in sekit
# (as created, channels-last, prepared), ONNX Runtime Java on the same weights, PyTorch eager
# (NCHW, channels-last) and frozen TorchScript, each in its own process (peak resident
# memory), in interleaved rounds; and training steps per second.
# Thread waiting: by default every engine waits without spinning (OMP_WAIT_POLICY=passive for
# the OpenMP engines, ONNX Runtime's allow_spinning=0): on a machine shared with other work,
# spinning threads turn the neighbours' load into 10x slowdowns. --spin keeps each engine's
# default. Benchmarks print numbers; they never fail a build.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=""
spin=""
networks=""
while [[ "${1:-}" == --* ]]; do
  case "$1" in
    --quick) quick=quick ;;
    --spin) spin=spin ;;
    --networks) networks=networks ;;
  esac
  shift
done
if [[ -z "$spin" ]]; then export OMP_WAIT_POLICY=passive; fi
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
if [[ -z "$networks" ]]; then
  echo "== JMH (Java -> sekit)"
  "$JAVA_HOME/bin/java" $jvm -jar benchmarks/target/benchmarks.jar -jvmArgsAppend "$jvm" \
    -rf json -rff "$out/jmh.json" "${jmh[@]}" "dev.sekit.bench.*" | grep -E "^(Benchmark|[A-Z][a-zA-Z]+Bench\.)" || true
  echo "== C++ driver"
  benchmarks/target/block_driver "$threads" $quick | tee "$out/driver.json"
  echo "== PyTorch eager"
  /usr/bin/python3 benchmarks/python/eager.py "$threads" $quick | tee "$out/eager.json"
fi
echo "== networks (each engine in its own process)"
ort="$(mvn -B -ntp -q -f benchmarks/pom.xml dependency:build-classpath -Dmdep.outputFile=/dev/stdout | tr ':' '\n' | grep onnxruntime)"
/usr/bin/python3 benchmarks/net/prepare.py benchmarks/target/net ese_vovnet19b_dw ese_vovnet39b
: > "$out/net.jsonl"
if [[ -n "$quick" ]]; then rounds=1; models=(ese_vovnet19b_dw); else rounds=3; models=(ese_vovnet19b_dw ese_vovnet39b); fi
java_net="$JAVA_HOME/bin/java --enable-native-access=ALL-UNNAMED -cp benchmarks/target/benchmarks.jar:$ort dev.sekit.bench.NetBench benchmarks/target/net"
for round in $(seq "$rounds"); do
  for model in "${models[@]}"; do
    for batch in 1 8; do
      if [[ -n "$quick" ]]; then reps=2; elif [[ $batch == 1 ]]; then reps=15; else reps=4; fi
      echo "round $round $model batch $batch ($(uptime | sed 's/.*load/load/'))"
      for e in ort sekit sekit_cl sekit_prepared; do $java_net "$model" $e "$batch" "$threads" "$reps" >> "$out/net.jsonl"; done
      for e in eager_nchw eager_cl frozen; do
        /usr/bin/python3 benchmarks/net/torch_net.py benchmarks/target/net "$model" $e "$batch" "$threads" "$reps" >> "$out/net.jsonl"
      done
    done
  done
done
echo "== training steps"
: > "$out/train.jsonl"
java_train="$JAVA_HOME/bin/java --enable-native-access=ALL-UNNAMED -cp benchmarks/target/benchmarks.jar dev.sekit.bench.TrainBench"
for round in $(seq "$rounds"); do
  if [[ -n "$quick" ]]; then s1=2; s2=1; else s1=20; s2=5; fi
  $java_train demo 128 "$threads" $s1 >> "$out/train.jsonl"
  /usr/bin/python3 benchmarks/net/train_net.py demo cl 128 "$threads" $s1 >> "$out/train.jsonl"
  /usr/bin/python3 benchmarks/net/train_net.py demo nchw 128 "$threads" $s1 >> "$out/train.jsonl"
  $java_train ese_vovnet19b_dw 8 "$threads" $s2 >> "$out/train.jsonl"
  /usr/bin/python3 benchmarks/net/train_net.py ese_vovnet19b_dw cl 8 "$threads" $s2 >> "$out/train.jsonl"
  /usr/bin/python3 benchmarks/net/train_net.py ese_vovnet19b_dw nchw 8 "$threads" $s2 >> "$out/train.jsonl"
done
load="$(uptime | sed 's/.*load average: //')"
machine="$(nproc) cores of $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $threads threads, libtorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)')"
wait_policy="$([[ -n "$spin" ]] && echo "each engine's default thread waiting (spinning)" || echo "no spinning (OMP_WAIT_POLICY=passive, ONNX Runtime allow_spinning=0)")"
"$JAVA_HOME/bin/java" -Djava.awt.headless=true -cp benchmarks/target/benchmarks.jar dev.sekit.bench.Report "$out" "$machine" \
  "load average at the end $load; $wait_policy"
echo "wrote $out/results.md and $out/chart.png"
