#!/usr/bin/env bash
# Builds the replenish .deb (agent and simulator, profile `dist`) for the host or for
# `--target aarch64-unknown-linux-gnu` (Raspberry Pi 4/5, with Debian's cross linker), then
# inspects it: the binaries, the configuration, the systemd unit and its hardening, the agent's
# size (at most 12 MB) and, for the host, that the packaged agent runs.
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
size=$(stat -c %s "$unpacked/usr/bin/replenish-agent")
echo "replenish-agent: $size bytes ($(( size / 1024 / 1024 )) MiB); file: $(file -b "$unpacked/usr/bin/replenish-agent" 2>/dev/null || true)"
if [ "$size" -gt $((12 * 1024 * 1024)) ]; then
  echo "the agent is larger than 12 MB" >&2
  exit 1
fi
if [ -z "$target" ]; then
  "$unpacked/usr/bin/replenish-agent" --version
  "$unpacked/usr/bin/replenish-agent" check-config "$unpacked/etc/replenish/agent.toml"
fi
