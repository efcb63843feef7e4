#!/usr/bin/env bash
# Resident memory and CPU of a running `forewarn run` (issue #13, "light on the device"), repeatable and
# self-contained: one mosquitto on a free loopback port, the acknowledging reference subscriber
# (`forewarn subscribe`), then the agent with the side-by-side bench's configuration
# (test/bench/side-by-side/peers.ts agentConfig). Not part of `npm test`; run after `npm run build`.
#
#   scripts/measure-rss.sh [host-only|defaults]
#
# Environment: SECONDS_RUN (90) how long the agent runs, SKIP_S (30) the first seconds left out of the
# VmRSS median and the CPU figure, INTERVAL_MS (1000) host.intervalMs, NODE_FLAGS (the service unit's,
# '--v8-pool-size=1 --no-opt'; set it empty for none) flags for the agent's
# node (e.g. --max-old-space-size=32), CLI (dist/agent/src/cli.js of this checkout) another build to measure,
# KEEP (unset) keeps the temporary folder.
#
# Prints one line: profile, VmRSS median (MiB) over [SKIP_S, SECONDS_RUN], VmHWM at the end (MiB),
# CPU ms/s over the same window (utime+stime of /proc/PID/stat, 10 ms ticks), and the number of samples.
set -euo pipefail

profile=${1:-host-only}
run_s=${SECONDS_RUN:-90}
skip_s=${SKIP_S:-30}
interval_ms=${INTERVAL_MS:-1000}
root=$(cd "$(dirname "$0")/.." && pwd)
cli=${CLI:-$root/dist/agent/src/cli.js}
[ -f "$cli" ] || { echo "build first: npm run build" >&2; exit 2; }
command -v mosquitto >/dev/null || { echo "mosquitto is not installed" >&2; exit 2; }

dir=$(mktemp -d /tmp/forewarn-rss.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "${KEEP:-}" ]; then echo "kept $dir" >&2; else rm -rf "$dir"; fi
}
trap cleanup EXIT

port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$port" >"$dir/mosquitto.conf"
mosquitto -c "$dir/mosquitto.conf" >"$dir/mosquitto.log" 2>&1 &
pids+=($!)
sleep 0.5

node "$cli" subscribe --url "mqtt://127.0.0.1:$port" --db "$dir/central.db" >"$dir/subscriber.log" 2>&1 &
subscriber=$!
pids+=("$subscriber")

# The bench's two profiles (peers.ts agentConfig), as YAML.
{
  printf 'agent: { id: rss-%s, view: "off", logLevel: warn }\n' "$profile"
  printf 'storage: { dir: "%s/data" }\n' "$dir"
  printf 'broker: { url: "mqtt://127.0.0.1:%s" }\n' "$port"
  printf 'metrics: { port: 0 }\n'
  if [ "$profile" = defaults ]; then
    printf 'sources: { host: { intervalMs: %s } }\n' "$interval_ms"
  else
    printf 'sources:\n  host: { intervalMs: %s }\n' "$interval_ms"
    for s in simulator gpu smart edac pcieAer ipmi; do printf '  %s: { enabled: false }\n' "$s"; done
    printf 'scoring: { bindings: [] }\n'
  fi
} >"$dir/agent.yaml"

# shellcheck disable=SC2086 # NODE_FLAGS is a list of flags
node ${NODE_FLAGS-"--v8-pool-size=1 --no-opt"} "$cli" run --config "$dir/agent.yaml" >"$dir/agent.log" 2>&1 &
agent=$!
pids=("$agent" "${pids[@]}")

ticks() { awk '{print $14 + $15}' "/proc/$agent/stat"; }
kib() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$agent/status"; }

rss=()
cpu0=
for ((t = 1; t <= run_s; t++)); do
  sleep 1
  kill -0 "$agent" 2>/dev/null || { echo "agent exited; log:" >&2; cat "$dir/agent.log" >&2; exit 1; }
  if ((t == skip_s)); then cpu0=$(ticks); fi
  if ((t > skip_s)); then rss+=("$(kib VmRSS)"); fi
done
cpu1=$(ticks)
hwm=$(kib VmHWM)
hz=$(getconf CLK_TCK)
# Stop the agent, then the subscriber, whose last line counts what it received and acknowledged: proof that the
# agent published throughout.
kill "$agent"; wait "$agent" 2>/dev/null || true
kill "$subscriber"; wait "$subscriber" 2>/dev/null || true
received=$(grep -m1 ' messages, ' "$dir/subscriber.log" | cut -d, -f1-2,8 || true)

median=$(printf '%s\n' "${rss[@]}" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}')
awk -v p="$profile" -v m="$median" -v h="$hwm" -v c0="$cpu0" -v c1="$cpu1" -v hz="$hz" -v w=$((run_s - skip_s)) -v n="${#rss[@]}" \
  -v f="${NODE_FLAGS-"--v8-pool-size=1 --no-opt"}" 'BEGIN {
    printf "%s%s: VmRSS median %.1f MiB, VmHWM %.1f MiB, CPU %.2f ms/s (%d samples)",
      p, (f == "" ? "" : " [" f "]"), m / 1024, h / 1024, (c1 - c0) * 1000 / hz / w, n }'
echo "; subscriber: ${received:-nothing received}"
