#!/usr/bin/env bash
# Footprint of the ESP32-C3 board image: builds it (release) and prints flash (text + rodata) and
# static RAM (data + bss), split into Espressif's Wi-Fi/PHY blobs, heap arenas and the
# application, and checks the targets (flash <= 256 KiB without the Wi-Fi blobs, static RAM
# <= 64 KiB with everything in .data and .bss, heap arenas included).
#
# Section totals come from the ELF (`size -A`: rustup's llvm-size, else llvm-size or GNU size on
# PATH, else the linker map). The split comes from the linker map that the board's build.rs asks
# for: input sections from C archives (`*.a`, i.e. esp-wifi-sys's libnet80211, libpp, libphy,
# libwpa_supplicant, ...) are the blobs, with the constants the linker merged from them; `.bss`
# sections of the esp-alloc heap statics are heap arenas. Everything else, including esp-radio's
# Rust glue, smoltcp and Rust strings, counts as application.
#
# Usage: firmware/size-report.sh [--no-build]
# The image is looked for under $CARGO_TARGET_DIR when that is set (as cargo itself does), else
# under the board's own target/.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
board="$here/boards/esp32c3"
target_dir="${CARGO_TARGET_DIR:-$board/target}"
case "$target_dir" in /*) ;; *) target_dir="$board/$target_dir" ;; esac
elf="$target_dir/riscv32imc-unknown-none-elf/release/replenish-esp32c3"
flash_target_kib=256
ram_target_kib=64

if [ "${1:-}" != "--no-build" ]; then
  (cd "$board" && cargo build --release)
fi
[ -f "$elf" ] || { echo "size-report: no image at $elf" >&2; exit 1; }

size_tool=""
sysroot="$(cd "$board" && rustc --print sysroot 2>/dev/null || true)"
for candidate in "$sysroot"/lib/rustlib/*/bin/llvm-size llvm-size size; do
  if command -v "$candidate" >/dev/null 2>&1; then size_tool="$candidate"; break; fi
done

# "section size" lines from the ELF, or nothing.
elf_sections="$( [ -n "$size_tool" ] && "$size_tool" -A "$elf" 2>/dev/null | awk 'NF >= 2 && $1 ~ /^\./ { print $1, $2 }' || true)"

# build.rs writes one map per feature set; take the one whose sections match the ELF.
map=""
for candidate in "$elf".map "$elf"+*.map; do
  [ -f "$candidate" ] || continue
  if [ -z "$elf_sections" ]; then map="$candidate"; break; fi
  if awk -v elf_sections="$elf_sections" '
    function hex(s,   i, v) { v = 0; s = tolower(s)
      for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
      return v }
    BEGIN { n = split(elf_sections, lines, "\n"); for (i = 1; i <= n; i++) { split(lines[i], f, " "); elf[f[1]] = f[2] } }
    substr($0, 34, 1) != " " && substr($0, 34, 1) != "" { name = substr($0, 34); if (name in elf && elf[name] != hex($3)) bad = 1 }
    END { exit bad }' "$candidate"; then
    map="$candidate"; break
  fi
done
[ -n "$map" ] || { echo "size-report: no linker map matches $elf; rebuild it (cargo build --release)" >&2; exit 1; }

tool="${size_tool##*/}"
awk -v elf_sections="$elf_sections" -v tool="${tool:-the linker map}" -v mapname="${map##*/}" \
    -v flash_target="$flash_target_kib" -v ram_target="$ram_target_kib" '
function hex(s,   i, v) { v = 0; s = tolower(s)
  for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
  return v }
function kib(b) { return sprintf("%8.1f KiB", b / 1024) }
function kb(b) { return sprintf("%.1f KiB", b / 1024) }
function group(sec) {
  if (sec == ".text" || sec == ".trap" || sec == ".rwtext" || sec == ".rwtext.wifi") return "text"
  if (sec == ".rodata" || sec == ".rodata.wifi" || sec == ".flash.appdesc" || sec == ".rodata_merge") return "rodata"
  if (sec == ".data" || sec == ".data.wifi") return "data"
  if (sec == ".bss" || sec == ".noinit") return "bss"
  if (sec == ".dram2_uninit") return "reclaimed"
  return "" }
BEGIN {
  n = split(elf_sections, lines, "\n")
  for (i = 1; i <= n; i++) { split(lines[i], f, " "); if (group(f[1]) != "") { elf[group(f[1])] += f[2]; have_elf = 1 } }
}
# Output section: the name starts in column 34; input sections in column 42.
substr($0, 34, 1) != " " && substr($0, 34, 1) != "" { out = substr($0, 34); g = group(out); if (g != "") map_total[g] += hex($3); if (out == ".rwtext" || out == ".trap" || out == ".rwtext.wifi") iram += hex($3); next }
g != "" && substr($0, 34, 8) == "        " && substr($0, 42, 1) != " " {
  size = hex($3); input = substr($0, 42)
  # Constants and strings the linker merged from C objects keep the first C section name
  # (.rodata.<function>.str1.4); those of Rust are plain (.rodata.str1.1): application.
  if (input ~ /\.a\(/ || input ~ /^<internal>:\(\.rodata\.[A-Za-z_][A-Za-z0-9_]*\.(str|cst)[0-9]/) blob[g] += size
  else if ((g == "bss" && input ~ /4HEAP17h/ && size >= 4096) || g == "reclaimed") heap[g] += size
}
END {
  split("text rodata data bss", gs, " ")
  for (i = 1; i <= 4; i++) { k = gs[i]; total[k] = have_elf ? elf[k] : map_total[k]; app[k] = total[k] - blob[k] - heap[k] }
  printf "Footprint of replenish-esp32c3 (release, riscv32imc-unknown-none-elf); totals from %s,\nsplit from %s\n\n", tool, mapname
  printf "%-24s %12s %12s %12s %12s\n", "", "total", "Wi-Fi blobs", "heap arenas", "application"
  for (i = 1; i <= 4; i++) { k = gs[i]
    printf "%-24s %12s %12s %12s %12s\n", k, kib(total[k]), kib(blob[k]), kib(heap[k]), kib(app[k]) }
  flash = total["text"] + total["rodata"]; flash_app = app["text"] + app["rodata"]
  ram = total["data"] + total["bss"]; ram_noheap = ram - heap["bss"]; ram_app = app["data"] + app["bss"]
  printf "%-24s %12s %12s %12s %12s\n", "flash = text + rodata", kib(flash), kib(blob["text"] + blob["rodata"]), "", kib(flash_app)
  printf "%-24s %12s %12s %12s %12s\n\n", "static RAM = data + bss", kib(ram), kib(blob["data"] + blob["bss"]), kib(heap["bss"]), kib(ram_app)
  printf "flash without Wi-Fi blobs:  %s  (target <= %d KiB): %s\n", kib(flash_app), flash_target, flash_app <= flash_target * 1024 ? "met" : "NOT MET"
  printf "static RAM, everything:     %s  (target <= %d KiB, heap arenas in .bss included): %s\n", kib(ram), ram_target, ram <= ram_target * 1024 ? "met" : "NOT MET"
  printf "static RAM without arenas:  %s\n", kib(ram_noheap)
  printf "\nNot in the figures: the initial values of .data, also in flash (%s); code run from\n", kb(total["data"])
  printf "IRAM, counted in text, also occupies SRAM (%s); bootloader RAM reclaimed as heap\n", kb(iram)
  printf "(.dram2_uninit, %s); the stack, which takes the rest of SRAM.\n", kb(map_total["reclaimed"])
}' "$map"
