#!/usr/bin/env bash
# Prepared inference (ese_vovnet19b_dw, ese_vovnet39b; batch 1 and 8; 224x224 float32) on each
# libtorch build, side by side in interleaved rounds, each in its own JVM:
#   debian12  Debian 12's libtorch 1.13 and oneDNN 2.6 (target/native-build)
#   pip       PyTorch's CPU wheel 2.13, with Debian 12's oneDNN 2.6 (target/native-build-pip)
#   debian13  Debian 13's libtorch 2.6 and oneDNN 3.7, in the root .ci/debian13.sh made, on the
#             build its last run left there (skipped when there is none)
# Run after ./sekit test, SEKIT_LIBTORCH=pip ./sekit test and (as root) bash .ci/debian13.sh.
#   benchmarks/quick/prepared_libtorch.sh [threads] [rounds]
set -euo pipefail
cd "$(dirname "$0")/../.."
threads="${1:-2}"
rounds="${2:-3}"
jdk="${SEKIT_JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}"
root="${SEKIT_DEBIAN13_ROOT:-/var/tmp/sekit-debian13}"
export OMP_WAIT_POLICY=passive
cp="target/classes:$(cat target/classpath.txt)"
run() { # LABEL LIBRARY
  [[ -f "$2" ]] || { echo "$1: no $2 (build it first)"; return 0; }
  "$jdk/bin/java" --enable-native-access=ALL-UNNAMED -Dsekit.library.path="$2" -cp "$cp" \
    benchmarks/quick/PreparedTiming.java "$threads" | sed "s/^/$1 /"
}
for r in $(seq "$rounds"); do
  echo "== round $r of $rounds"
  run debian12 target/native-build/libsekit.so
  run pip target/native-build-pip/libsekit.so
  if [[ -f "$root/work/sekit/target/native-build/libsekit.so" ]]; then
    bash .ci/debian13.sh --reuse bash -c "OMP_WAIT_POLICY=passive $jdk/bin/java --enable-native-access=ALL-UNNAMED \
      -Dsekit.library.path=target/native-build/libsekit.so -cp target/classes:\$(cat target/classpath.txt) \
      benchmarks/quick/PreparedTiming.java $threads" 2>/dev/null | sed "s/^/debian13 /"
  fi
done
