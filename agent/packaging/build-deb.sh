#!/usr/bin/env bash
# Builds the replenish .deb (agent and simulator, profile `dist`) for the host or for
# `--target aarch64-unknown-linux-gnu` (Raspberry Pi 4/5, with Debian's cross linker), then
# inspects it: the binaries, the configuration, the systemd unit and its hardening (as
# systemd-analyze reads and scores it), the agent's size (at most 12 MB) and, for the host,
# that the packaged agent runs.
# Usage: agent/packaging/build-deb.sh [--target TRIPLE]
set -euo pipefail
cd "$(dirname "$0")/../.."
target=""
if [ "${1:-}" = "--target" ]; then
  target="$2"
fi
args=(-p replenish-agent --profile dist --no-strip)
dir=target/dist
if [ -n "$target" ]; then
  args+=(--target "$target")
  dir="target/$target/dist"
fi
# cargo-deb builds the agent; the simulator is a second binary of the package.
cargo build -p replenish-sim --profile dist ${target:+--target "$target"}
deb=$(cargo deb "${args[@]}" | tail -n 1)
echo "built $deb"
dpkg-deb --info "$deb"
contents=$(dpkg-deb --contents "$deb")
echo "$contents"
for path in ./usr/bin/replenish-agent ./usr/bin/replenish-sim ./etc/replenish/agent.toml \
  ./usr/lib/systemd/system/replenish-agent.service ./usr/share/doc/replenish/operations.md; do
  grep -q " $path\$" <<<"$contents" || { echo "missing from the package: $path" >&2; exit 1; }
done
unpacked=$(mktemp -d)
trap 'rm -rf "$unpacked"' EXIT
dpkg-deb --extract "$deb" "$unpacked"
unit="$unpacked/usr/lib/systemd/system/replenish-agent.service"
for setting in DynamicUser=yes StateDirectory=replenish ProtectSystem=strict NoNewPrivileges=yes \
  ProtectHome=yes PrivateTmp=yes CapabilityBoundingSet= UMask=0077; do
  grep -qx "$setting" "$unit" || { echo "the unit lacks $setting" >&2; exit 1; }
done
# The unit as systemd itself reads it (systemd-analyze works without systemd running, as in a
# container): every setting known (a misspelt one is only warned about, and would silently
# weaken the sandbox), the command and its paths found in the package, and the hardening
# scored at most 2.0 on systemd's exposure scale of 0 (locked down) to 10.
if [ -z "$target" ]; then
  root=$(mktemp -d)
  trap 'rm -rf "$unpacked" "$root"' EXIT
  mkdir -p "$root/usr/lib/systemd"
  cp -r /usr/lib/systemd/system "$root/usr/lib/systemd/"
  cp -r "$unpacked/." "$root/"
  verify=$(systemd-analyze verify --man=no --root="$root" \
    /usr/lib/systemd/system/replenish-agent.service 2>&1) \
    || { echo "$verify" >&2; echo "systemd-analyze verify failed" >&2; exit 1; }
  if [ -n "$verify" ]; then
    echo "$verify" >&2
    echo "systemd-analyze verify: the unit has warnings" >&2
    exit 1
  fi
  systemd-analyze security --offline=true --threshold=20 "$unit" | tail -n 1
fi
size=$(stat -c %s "$unpacked/usr/bin/replenish-agent")
echo "replenish-agent: $size bytes ($(( size / 1024 / 1024 )) MiB); file: $(file -b "$unpacked/usr/bin/replenish-agent" 2>/dev/null || true)"
if [ "$size" -gt $((12 * 1024 * 1024)) ]; then
  echo "the agent is larger than 12 MB" >&2
  exit 1
fi
# Run the packaged agent: natively, or the Raspberry Pi build under qemu-user with Debian's
# aarch64 libraries (the cross linker's sysroot).
agent=()
if [ -z "$target" ]; then
  agent=("$unpacked/usr/bin/replenish-agent")
elif [ "$target" = aarch64-unknown-linux-gnu ] && command -v qemu-aarch64 >/dev/null 2>&1; then
  agent=(qemu-aarch64 -L /usr/aarch64-linux-gnu "$unpacked/usr/bin/replenish-agent")
fi
if [ "${#agent[@]}" -gt 0 ]; then
  "${agent[@]}" --version
  "${agent[@]}" check-config "$unpacked/etc/replenish/agent.toml"
  # Start it on the packaged configuration (data and ports moved to loopback and a temporary
  # directory), wait for /healthz to say ok, then stop it the way systemd does (SIGTERM): it
  # must flush and exit 0.
  read -r http mqtt mqtt5 < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
  REPLENISH_STORAGE__PATH="$unpacked/state" REPLENISH_HTTP__LISTEN="127.0.0.1:$http" \
    REPLENISH_MQTT__EMBEDDED_LISTEN="127.0.0.1:$mqtt" REPLENISH_MQTT__EMBEDDED_LISTEN_V5="127.0.0.1:$mqtt5" \
    "${agent[@]}" --config "$unpacked/etc/replenish/agent.toml" >"$unpacked/agent.log" 2>&1 &
  pid=$!
  healthy=""
  for _ in $(seq 1 120); do
    if healthy=$(python3 -c 'import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())' \
      "http://127.0.0.1:$http/healthz" 2>/dev/null); then
      break
    fi
    sleep 0.5
  done
  if [ -z "$healthy" ]; then
    kill "$pid" 2>/dev/null || true
    cat "$unpacked/agent.log" >&2
    echo "the packaged agent did not answer /healthz" >&2
    exit 1
  fi
  echo "running: $healthy"
  kill -TERM "$pid"
  status=0
  wait "$pid" || status=$?
  if [ "$status" -ne 0 ] || ! grep -q "state flushed" "$unpacked/agent.log"; then
    cat "$unpacked/agent.log" >&2
    echo "the packaged agent did not stop cleanly on SIGTERM (exit $status)" >&2
    exit 1
  fi
  echo "stopped cleanly on SIGTERM"
fi
