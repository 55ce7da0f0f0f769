#!/usr/bin/env bash
# Runs the README's test command (or the command given) in a Debian 13 "trixie" root, on a
# fresh clone of this checkout's HEAD, so that the other Debian release is one command away:
#
#   bash .ci/debian13.sh                 ./sekit test in the Debian 13 root
#   bash .ci/debian13.sh ./sekit demo    any command, run in the clone
#   bash .ci/debian13.sh --reuse CMD     CMD in the clone of the last run, as that run left it
#
# As root. The root is made once with debootstrap (about 3.5 GB once ./sekit has installed its
# packages) and kept for the next run: SEKIT_DEBIAN13_ROOT (default /var/tmp/sekit-debian13).
# Packages come from the Debian archive this machine's apt already uses; the host's JDK
# (SEKIT_JAVA_HOME, default Temurin 25) is bind-mounted, read-only, at the same path. Too
# heavy for every CI run; run it before changing what the native build depends on.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
root="${SEKIT_DEBIAN13_ROOT:-/var/tmp/sekit-debian13}"
jdk="${SEKIT_JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}"
die() { echo "debian13: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root: debootstrap, chroot and the bind mounts need it"
[[ -x "$jdk/bin/java" ]] || die "no JDK at $jdk: set SEKIT_JAVA_HOME to a JDK 25"
reuse=""
if [[ "${1:-}" == --reuse ]]; then reuse=1; shift; fi
[[ $# -gt 0 ]] || set -- ./sekit test

# The archive this machine's apt uses (deb822 or one-line sources).
mirror="$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -n1)"
[[ -n "$mirror" ]] || mirror="$(awk '$1 == "deb" && $0 !~ /security/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null)"
[[ -n "$mirror" ]] || die "no Debian archive found in /etc/apt/sources.list*: cannot make the Debian 13 root"

if [[ ! -x "$root/usr/bin/apt-get" ]]; then
  command -v debootstrap >/dev/null || { apt-get update -q && apt-get install -y -q debootstrap; } \
    || die "cannot install debootstrap"
  echo "debian13: making $root (debootstrap trixie from the archive apt uses here)" >&2
  debootstrap --variant=minbase --include=ca-certificates,git,procps trixie "$root" "$mirror" \
    || die "debootstrap trixie failed; see $root/debootstrap/debootstrap.log"
fi

mounts=()
cleanup() {
  local i
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "${mounts[i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
bind() { # bind SRC DEST [ro]
  mkdir -p "$2"
  mount --bind "$1" "$2"
  mounts+=("$2")
  [[ "${3:-}" == ro ]] && mount -o remount,bind,ro "$2"
  return 0
}
bind /proc "$root/proc"
bind /sys "$root/sys"
bind /dev "$root/dev"
bind /dev/pts "$root/dev/pts"
bind "$jdk" "$root$jdk" ro
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
# The host's CA certificates (for Maven's downloads), trusted by the root as by the host.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  chroot "$root" update-ca-certificates >/dev/null
fi
# Temurin's cacerts is a link to the Java keystore of ca-certificates-java: give the root the
# host's until its own exists.
if [[ -f /etc/ssl/certs/java/cacerts && ! -f "$root/etc/ssl/certs/java/cacerts" ]]; then
  mkdir -p "$root/etc/ssl/certs/java"
  cp /etc/ssl/certs/java/cacerts "$root/etc/ssl/certs/java/cacerts"
fi

# A fresh clone of HEAD, with shared/ beside it as CI has it (or the last run's, with --reuse).
if [[ -n "$reuse" ]]; then
  [[ -d "$root/work/sekit" ]] || die "--reuse: no clone in $root/work/sekit yet; run once without it"
else
  rm -rf "$root/work/sekit"
  mkdir -p "$root/work"
  git clone -q "$repo" "$root/work/sekit"
  if [[ -d "$repo/../shared" ]]; then rm -rf "$root/work/shared"; cp -r "$repo/../shared" "$root/work/shared"; fi
fi
echo "debian13: running '$*' in $root/work/sekit ($(git -C "$root/work/sekit" rev-parse --short HEAD))" >&2
chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  LANG=C.UTF-8 SEKIT_JAVA_HOME="$jdk" /bin/bash -c 'cd /work/sekit && "$@"' debian13 "$@"
