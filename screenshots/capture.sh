#!/usr/bin/env bash
# Regenerates the screenshots from the real TUI: runs `k3s-cockpit demo` in
# tmux, waits until the incident is visible, captures the pane with colours
# and renders it to PNG.   Usage: screenshots/capture.sh   (from the repo root)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${K3S_COCKPIT_BIN:-target/release/k3s-cockpit}
[ -n "${K3S_COCKPIT_BIN:-}" ] || cargo build --release --quiet
python3 -c "import PIL" 2>/dev/null || pip install --quiet pillow
socket="k3sc-shot-$$"
out=$(mktemp -d)
trap 'tmux -L "$socket" kill-server 2>/dev/null || true; rm -rf "$out"' EXIT
tmux -L "$socket" new-session -d -x 132 -y 34 \
  "XDG_STATE_HOME=$out TERM=xterm-256color $bin demo"
# Wait for the announcer move (the incident's climax), at most 4 minutes.
for _ in $(seq 1 240); do
  if tmux -L "$socket" capture-pane -p | grep -q "announcer moved"; then break; fi
  sleep 1
done
sleep 2
tmux -L "$socket" capture-pane -p -e > "$out/watch.txt"
python3 screenshots/ansi_to_png.py "$out/watch.txt" screenshots/watch-incident.png
echo "wrote screenshots/watch-incident.png"
