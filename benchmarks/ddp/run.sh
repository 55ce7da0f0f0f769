#!/usr/bin/env bash
# Data-parallel throughput of the Fashion-MNIST demo (ese-vovnet-tiny, batch 128, channels-last):
# 1 process x 2 threads against 2 processes x 1 thread (sekit train --nproc-per-node 2, c10d
# Gloo over loopback), with and without SyncBatchNorm (--sync-bn), one epoch on the first N training images each, in one session. The
# data-parallel run also reports how long backward waited for the gradient reductions that
# were not hidden behind it. Run after ./sekit test or mvn package.
#   benchmarks/ddp/run.sh [N]       (default 12800 images: 100 steps)
set -euo pipefail
cd "$(dirname "$0")/../.."
n="${1:-12800}"
java="${SEKIT_JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}/bin/java"
mp="$(ls target/sekit-*.jar | grep -v -- '-app\.jar$' | head -n1):$(ls target/sekit-*-app.jar | head -n1):$(cat target/classpath.txt)"
out=target/ddp-bench
mkdir -p "$out"
run() {
  OMP_WAIT_POLICY=passive "$java" --enable-native-access=dev.sekit -p "$mp" -m dev.sekit.app/dev.sekit.app.SekitCli \
    train --epochs 1 --limit-train "$n" --limit-test 1000 --no-progress --threads 2 "$@"
}
echo "== 1 process x 2 threads"
run --out "$out/one" | tee "$out/one.log"
echo "== 2 processes x 1 thread"
run --nproc-per-node 2 --out "$out/two" | tee "$out/two.log"
echo "== 2 processes x 1 thread, SyncBatchNorm"
run --nproc-per-node 2 --sync-bn --out "$out/sync" | tee "$out/sync.log"
echo
echo "samples/s, 1 process x 2 threads: $(grep -o '[0-9]* samples/s' "$out/one.log" | tail -n1)"
echo "samples/s, 2 processes x 1 thread: $(grep -o '[0-9]* samples/s' "$out/two.log" | tail -n1)"
echo "samples/s, 2 processes x 1 thread, SyncBatchNorm: $(grep -o '[0-9]* samples/s' "$out/sync.log" | tail -n1)"
grep -h "data-parallel:" "$out/two.log" "$out/sync.log" || true
echo "== all-reduce of the demo network's gradients (409,010 float32), 2 processes"
cp="target/classes:$(cat target/classpath.txt)"
port=$((29500 + RANDOM % 1000))
for r in 1 0; do
  MASTER_ADDR=127.0.0.1 MASTER_PORT=$port RANK=$r WORLD_SIZE=2 OMP_NUM_THREADS=1 \
    "$java" --enable-native-access=ALL-UNNAMED -Dsekit.threads=1 -cp "$cp" benchmarks/ddp/AllReduceTiming.java 409010 &
done
wait
