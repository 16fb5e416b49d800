#!/usr/bin/env bash
# Regenerates the screenshots from the real TUI in tmux, captured with
# colours and rendered to PNG:
#   demo-halt.png       `demo`: the rollout started with `s`, halted by the
#                       delayed kubelet failure during fun-bedbug's soak
#   watch-incident.png  `demo --watch`: the old automation's run, read-only,
#                       at the announcer move
# Usage: screenshots/capture.sh   (from the repo root; K3S_COCKPIT_BIN=path
# skips the release build). Takes about 6 minutes: the demo runs in real time.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${K3S_COCKPIT_BIN:-target/release/k3s-cockpit}
[ -n "${K3S_COCKPIT_BIN:-}" ] || cargo build --release --quiet
python3 -c "import PIL" 2>/dev/null || pip install --quiet pillow
out=$(mktemp -d)
sockets=()
trap 'for s in "${sockets[@]}"; do tmux -L "$s" kill-server 2>/dev/null || true; done; rm -rf "$out"' EXIT

# start NAME ARGS...: the demo in its own tmux server (socket
# k3sc-shot-NAME-PID) and state dir. Not in a subshell, so the EXIT trap
# sees every socket.
start() {
  local name=$1; shift
  local socket="k3sc-shot-$name-$$"
  sockets+=("$socket")
  mkdir -p "$out/$name"
  tmux -L "$socket" new-session -d -x 132 -y 38 \
    "XDG_STATE_HOME=$out/$name TERM=xterm-256color $bin demo $*"
}

# wait_for SOCKET TEXT SECONDS
wait_for() {
  for _ in $(seq 1 "$3"); do
    if tmux -L "$1" capture-pane -p | grep -q "$2"; then return 0; fi
    sleep 1
  done
  echo "timed out waiting for: $2" >&2
  return 1
}

shot() {
  tmux -L "$1" capture-pane -p -e > "$out/pane.txt"
  python3 screenshots/ansi_to_png.py "$out/pane.txt" "screenshots/$2"
  echo "wrote screenshots/$2"
}

start control
start watch --watch
control="k3sc-shot-control-$$"
watch="k3sc-shot-watch-$$"
wait_for "$control" " IDLE " 60
tmux -L "$control" send-keys s
wait_for "$control" "y = yes" 10
tmux -L "$control" send-keys y
wait_for "$watch" "announcer moved" 300
sleep 2
shot "$watch" watch-incident.png
wait_for "$control" " HALTED " 420
# Select the halted node, as an operator would before pressing R.
sleep 3
shot "$control" demo-halt.png
