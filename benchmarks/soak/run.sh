#!/usr/bin/env bash
# Soak benchmark (not a test): calls per second and resident-memory growth per call for a
# per-call arena, a long-lived arena with Tensor.close(), and threads with their own modules.
# The Java heap is fixed and pre-touched, so resident-memory growth is native memory.
# Run after ./sekit test or mvn package.
#   benchmarks/soak/run.sh [calls per row, default 2000000] [threads, default 4]
set -euo pipefail
cd "$(dirname "$0")/../.."
java="${SEKIT_JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}/bin/java"
"$java" --enable-native-access=ALL-UNNAMED -Dsekit.threads=1 -Xms256m -Xmx256m -XX:+AlwaysPreTouch \
  -cp "target/classes:$(cat target/classpath.txt)" benchmarks/soak/Soak.java "$@"
