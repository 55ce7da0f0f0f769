#!/usr/bin/env bash
# Prepares, on the CPU build machine, what a GPU machine without Java or Debian's libraries
# needs to build and test sekit (benchmarks/gpu/device.sh runs it there):
#   - a jlink runtime of the JDK 25 (only the modules the library and its tests use), as .tar.xz
#   - the compiled classes (main, app, tests) and the jars of their classpath, JUnit's console
#   - Debian's oneDNN, TurboJPEG and Gloo-header packages, as .deb files (unpacked there, not installed)
#   - with SEKIT_BUNDLE_IMAGES=1, the image fixtures (37 MB; they need Debian's wallpapers,
#     which that machine lacks, so without them the image tests fail there)
# Usage: benchmarks/gpu/bundle.sh [DIR]   (default .gpu; after ./sekit test has built target/)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
dir="$(realpath -m "${1:-$root/.gpu}")"  # relative to where it is run
cd "$root"
JAVA_HOME="${SEKIT_JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}"
[[ -d target/test-classes && -f target/classpath.txt ]] \
  || { echo "bundle.sh: build first (./sekit test, or mvn -DskipTests verify)" >&2; exit 1; }
junit=org.junit.platform:junit-platform-console-standalone:1.11.4
mkdir -p "$dir/jars" "$dir/debs"

if [[ ! -f "$dir/jrt.tar.xz" ]]; then
  rm -rf "$dir/jrt"
  "$JAVA_HOME/bin/jlink" --add-modules java.base,java.logging,java.management,jdk.management,jdk.unsupported,java.desktop,java.compiler \
    --strip-java-debug-attributes --strip-native-debug-symbols=exclude-debuginfo-files --no-header-files \
    --no-man-pages --compress=zip-9 --output "$dir/jrt"
  tar -C "$dir" -cJf "$dir/jrt.tar.xz" jrt
  rm -rf "$dir/jrt"
fi

mvn -B -ntp -q dependency:copy -Dartifact="$junit" -DoutputDirectory="$dir/jars"
IFS=: read -ra jars < target/classpath.txt || true  # one line; read fails at its end (no newline)
cp "${jars[@]}" "$dir/jars/"
# The classes, without the CPU build of libsekit (the GPU machine builds its own).
tar -C target --exclude='classes/native' -czf "$dir/classes.tar.gz" classes app-classes test-classes
[[ ${SEKIT_BUNDLE_IMAGES:-0} == 1 ]] && tar -C target/fixtures -czf "$dir/images.tar.gz" images

(cd "$dir/debs" && apt-get download libdnnl2 libdnnl-dev libturbojpeg0 libturbojpeg0-dev libgloo-dev ocl-icd-libopencl1)
for f in "$dir"/debs/*%3a*; do [[ -e "$f" ]] && mv "$f" "${f//%3a/_}"; done
du -sh "$dir"
