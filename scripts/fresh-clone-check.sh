#!/usr/bin/env bash
# Proves the README's two commands on a clean clone of the committed tree, as CI and a new user see it:
# `npm ci && npm test`, then `npm start` for a few seconds (it must start on embedded defaults and stop
# cleanly on SIGINT). Usage: scripts/fresh-clone-check.sh [REF]   (default HEAD)
set -euo pipefail
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
ref=${1:-HEAD}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone --quiet "$repo" "$work/forewarn"
cd "$work/forewarn"
git checkout --quiet "$ref"
# shared/ sits beside the checkout in CI; link ours so data-dependent tests run as they would there.
[ -d "$repo/../shared" ] && ln -s "$repo/../shared" "$work/shared"
npm ci --no-audit --no-fund
npm test
echo "--- npm start for 5 s (no broker needed) ---"
timeout -s INT 5 npm start > start.log 2>&1 || status=$?
# timeout exits 124 when it had to send the signal: that is the expected way to stop the foreground agent.
[ "${status:-0}" = 124 ] || { cat start.log; echo "npm start exited with ${status:-0} before the 5 s were up"; exit 1; }
grep -q '"msg":"model loaded"' start.log || { cat start.log; echo "the model did not load"; exit 1; }
grep -q '"msg":"agent stopped"' start.log || { cat start.log; echo "the agent did not stop cleanly"; exit 1; }
echo "fresh clone OK: npm ci, npm test and npm start all work"
