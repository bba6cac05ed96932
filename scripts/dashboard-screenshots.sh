#!/usr/bin/env bash
# Screenshots of the dashboard's main pages, as docs/images holds them:
#   scripts/dashboard-screenshots.sh DB [OUT_DIR]
# DB is a database with recorded runs (e.g. reproml-demo/reproml.db after
# `reproml demo`); needs Debian's chromium. REPROML (default
# target/release/reproml) is the binary that serves it.
set -euo pipefail
db="${1:?usage: scripts/dashboard-screenshots.sh DB [OUT_DIR]}"
out="${2:-docs/images}"
reproml="${REPROML:-target/release/reproml}"
mkdir -p "$out"
log="$(mktemp)"
"$reproml" server --listen 127.0.0.1:0 --db "$db" 2> "$log" &
server=$!
trap 'kill $server 2>/dev/null || true; rm -f "$log"' EXIT
url=""
for _ in $(seq 50); do
    url=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$log" | head -1 || true)
    [ -n "$url" ] && break
    sleep 0.1
done
[ -n "$url" ] || { echo "the server did not start: $(cat "$log")" >&2; exit 1; }
experiment="${EXPERIMENT:-demo-real-fault}"
variants="${VARIANTS:-buggy,corrected}"
shoot() { # NAME SIZE ROUTE
    chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size="$2" \
        --virtual-time-budget=5000 --screenshot="$out/$1.png" "$url/$3" 2>/dev/null
    echo "$out/$1.png"
}
shoot dashboard-experiments 1280,800 "#/"
shoot dashboard-experiment 1280,1400 "#/e/$experiment"
shoot dashboard-comparison 1280,1000 "#/e/$experiment/compare/$variants"
shoot dashboard-progress 1280,600 "#/progress"
shoot dashboard-comparison-phone 390,844 "#/e/$experiment/compare/$variants"
