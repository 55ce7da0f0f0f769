#!/usr/bin/env bash
# The whole GPU run, on a machine with an NVIDIA GPU, nvcc, CMake and a CUDA build of PyTorch
# (python3) but no Java and no Debian packages: builds libsekit against that PyTorch's
# libtorch, then runs ctest, the JUnit suite (the `cuda` tests included), the GPU benchmark
# and the comparison with timm on CUDA. The bundle comes from benchmarks/gpu/bundle.sh.
#
# Usage: benchmarks/gpu/device.sh BUNDLE OUT [STAGE...]
#   stages: probe build ctest timm junit bench (default: all, in that order; a stage whose
#   prerequisite failed is skipped). Logs go to OUT/<stage>.log; a summary is printed last.
set -uo pipefail
[[ $# -ge 2 ]] || { echo "usage: benchmarks/gpu/device.sh BUNDLE OUT [STAGE...]" >&2; exit 2; }
bundle="$(cd "$1" && pwd)" || exit 2; out="$(mkdir -p "$2" && cd "$2" && pwd)" || exit 2; shift 2
cd "$(dirname "$0")/../.."
stages=("$@"); [[ ${#stages[@]} -eq 0 ]] && stages=(probe build ctest timm junit bench)
py="${SEKIT_PYTHON:-python3}"
build=target/native-build-cuda
deb=/tmp/sekit-deb
jrt=/tmp/sekit-jrt
jobs="$(nproc)"
declare -A result

log() { echo "== $*" >&2; }
unpack_debs() {
  [[ -d $deb ]] && return 0
  mkdir -p $deb
  for f in "$bundle"/debs/*.deb; do
    if command -v dpkg-deb >/dev/null; then dpkg-deb -x "$f" $deb
    else (t="$(mktemp -d)" && cd "$t" && ar x "$f" && tar -xf data.tar.* -C $deb); fi
  done
}
libpath() { echo "$deb/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; }

stage_probe() {
  echo "vm.overcommit_memory=$(cat /proc/sys/vm/overcommit_memory)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  nvcc --version | tail -2
  "$py" -c 'import torch, sys; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0), torch.utils.cmake_prefix_path)'
  local lib; lib="$("$py" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
  echo "dnnl symbols exported by libtorch_cpu: $(nm -D --defined-only "$lib/libtorch_cpu.so" | grep -c ' dnnl_' || true)"
  echo "gloo headers in torch: $(ls -d "$lib/../include/gloo" 2>/dev/null || echo none)"
  "$py" -c 'import timm; print("timm", timm.__version__)' || true
}

stage_build() {
  unpack_debs
  cmake -S native -B $build -DCMAKE_BUILD_TYPE=Release -DSEKIT_PYTHON="$py" -DCMAKE_PREFIX_PATH="$deb/usr" \
    -DCMAKE_CUDA_ARCHITECTURES="${SEKIT_CUDA_ARCH:-90}" -DBUILD_TESTING=ON || return 1
  cmake --build $build -j"$jobs" -- -k
}

stage_ctest() {
  (cd $build && LD_LIBRARY_PATH="$(libpath)" ctest --output-on-failure)
}

# The classes, the CUDA build of libsekit where Maven would put it, the fixtures, and a
# classpath.txt naming the bundle's jars (the tests that start child JVMs read it).
prepare_java() {
  [[ -x $jrt/bin/java ]] || { mkdir -p $jrt && tar -C $jrt --strip-components=1 -xJf "$bundle/jrt.tar.xz"; } || return 1
  tar -C target -xzf "$bundle/classes.tar.gz" || return 1
  mkdir -p target/classes/native/linux-x86_64 && cp $build/libsekit.so target/classes/native/linux-x86_64/ || return 1
  ls "$bundle"/jars/*.jar | grep -v console-standalone | paste -sd: > target/classpath.txt
  if [[ ! -f target/fixtures/manifest.json ]]; then
    "$py" src/test/python/make_fixtures.py target/fixtures || return 1
  fi
  [[ -d target/fixtures/images || ! -f "$bundle/images.tar.gz" ]] || tar -C target/fixtures -xzf "$bundle/images.tar.gz"
  return 0
}

# Two JVMs, so that the cuda package reports even if the rest runs out of time: first
# dev.sekit.cuda, then every other class (each with its own time limit and XML report).
stage_junit() {
  prepare_java || return 1
  # Absolute paths: the tests that start child JVMs give them this class path in other folders.
  local cp rc=0; cp="$PWD/target/test-classes:$PWD/target/classes:$PWD/target/app-classes:$(cat target/classpath.txt):$(ls "$bundle"/jars/*console-standalone*.jar)"
  junit() {
    local name="$1" limit="$2"; shift 2
    LD_LIBRARY_PATH="$(libpath)" timeout "$limit" $jrt/bin/java --enable-native-access=ALL-UNNAMED -Xmx4g \
      -Dsekit.fixtures="$PWD/target/fixtures" -Dsekit.threads=2 \
      -Dsekit.timm.cuda="$PWD/target/timm-cuda/timm_ese_vovnet19b_dw_cuda.safetensors" -cp "$cp" \
      org.junit.platform.console.ConsoleLauncher execute --details=verbose --details-theme=ascii --disable-banner \
      --reports-dir="$out/junit-$name" "$@"
  }
  junit cuda "${SEKIT_JUNIT_CUDA_LIMIT:-180}" --select-package=dev.sekit.cuda || rc=1
  # SEKIT_JUNIT_SELECT (e.g. "--select-class=dev.sekit.TensorTest") replaces the scan of the rest.
  if [[ -n ${SEKIT_JUNIT_SELECT:-} ]]; then
    junit rest "${SEKIT_JUNIT_REST_LIMIT:-1800}" $SEKIT_JUNIT_SELECT || rc=1
  else
    junit rest "${SEKIT_JUNIT_REST_LIMIT:-1800}" --scan-class-path=target/test-classes \
      --exclude-package=dev.sekit.cuda ${SEKIT_JUNIT_ARGS:-} || rc=1
  fi
  return $rc
}

stage_bench() {
  LD_LIBRARY_PATH="$(libpath)" SEKIT_PYTHON="$py" benchmarks/gpu/run.sh --no-build
}

# timm's own model on CUDA: the reference file dev.sekit.cuda.TimmCudaTest reads.
stage_timm() {
  mkdir -p target/timm-cuda && "$py" benchmarks/gpu/timm_cuda.py target/timm-cuda
}

declare -A prereq=([ctest]=build [junit]=build [bench]=build)
for s in "${stages[@]}"; do
  p="${prereq[$s]:-}"
  if [[ -n $p && ${result[$p]:-ok} != ok ]]; then result[$s]="skipped ($p failed)"; continue; fi
  log "$s"
  start=$SECONDS
  if "stage_$s" > "$out/$s.log" 2>&1; then result[$s]=ok; else result[$s]="FAILED"; fi
  log "$s: ${result[$s]} in $((SECONDS - start)) s"
  if [[ ${result[$s]} != ok ]]; then
    grep -m 60 -E "error|FAIL|Error" "$out/$s.log" >&2 || tail -n 30 "$out/$s.log" >&2
  fi
done
echo "| stage | result |"; echo "|---|---|"
for s in "${stages[@]}"; do echo "| $s | ${result[$s]} |"; done
