#!/usr/bin/env python3
"""Handoff benchmark (issue #12): the real binary upgrades the lab headless
with two probed LoadBalancer services, with `handoff = "auto"` and "off",
at 3 and 100 nodes, all in one run. Prints the handoff time per announcing
node (label set -> announcement moved -> probes settled green) and the
user-visible outage (the cockpit's and the lab's own log).

Usage: cargo build && python3 scripts/handoff_bench.py [--bin target/debug/k3s-cockpit]
"""
import argparse, hashlib, json, os, socket, subprocess, sys, tempfile, time
from datetime import datetime

SERVICES = [("web", "127.77.0.41"), ("cam", "127.77.0.42")]
SCALE = 10.0
SCENARIO = """name = "handoff-bench"
time_scale = 1.0
[timing]
restart_down = "10s"
reprogram = "10s"
kubelet_startup = "25s"
install = "10s"
[[nodes]]
name = "seed"
role = "server"
version = "v1.34.3+k3s1"
{services}
[replay]
start = "1h"
versions = ["v1.35.0+k3s1"]
settle = "1s"
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def ts(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def announcer(nodes, ip):
    return min(nodes, key=lambda n: hashlib.sha256(f"{n}#{ip}".encode()).digest())


def incident():
    """The demo's scenario without its kubelet faults, on free ports:
    (scenario text, [(service, ip, port)], node names)."""
    text = open("assets/scenarios/incident-2026-01-25.toml").read()
    text = text[: text.index("# 13:46")] + text[text.index("# The old automation"):]
    services = []
    for name, ip, port in [("frigate/frigate", "127.77.0.12", 5000), ("home/home-assistant", "127.77.0.11", 8123)]:
        new = free_port()
        text = text.replace(f"port = {port}", f"port = {new}")
        services.append((name, ip, new))
    nodes = ["k3s-vm-pumped-piglet-gpu", "k3s-vm-fun-bedbug", "k3s-vm-still-fawn"]
    return text, services, nodes


def generated(count):
    ports = [free_port() for _ in SERVICES]
    services = "".join(
        f'[[services]]\nnamespace = "{n}"\nname = "{n}"\nip = "{ip}"\nport = {p}\npod_node = "seed"\n'
        for (n, ip), p in zip(SERVICES, ports)
    )
    return (SCENARIO.format(services=services),
            [(f"{n}/{n}", ip, p) for (n, ip), p in zip(SERVICES, ports)],
            [f"lab-node-{i:04}" for i in range(count)])


def run(binary, count, handoff):
    d = tempfile.mkdtemp(prefix=f"handoff-{count}-{handoff}-")
    text, services, names = incident() if count == "incident" else generated(count)
    with open(f"{d}/scenario.toml", "w") as f:
        f.write(text)
    api = free_port()
    extra = [] if count == "incident" else ["--nodes", str(count), "--time-scale", str(SCALE)]
    lab = subprocess.Popen(
        [binary, "lab", "--scenario", f"{d}/scenario.toml", *extra, "--listen", f"127.0.0.1:{api}",
         "--kubeconfig-out", f"{d}/kc", "--plan-out", f"{d}/plan.toml",
         "--outage-log", f"{d}/lab-outages.jsonl"],
        stdout=subprocess.DEVNULL, stderr=open(f"{d}/lab.log", "w"))
    deadline = time.time() + 60
    while not (os.path.exists(f"{d}/plan.toml") and os.path.exists(f"{d}/kc")):
        if time.time() > deadline or lab.poll() is not None:
            sys.exit(f"lab did not start, see {d}/lab.log")
        time.sleep(0.1)
    time.sleep(0.5)
    targets = sorted({announcer(names, ip) for _, ip, _ in services})
    if count == "incident":
        targets = names
    plan = open(f"{d}/plan.toml").read()
    plan = plan.replace('soak = "20000ms"', 'soak = "3s"').replace('final_soak = "12000ms"', 'final_soak = "1s"')
    plan = plan.replace('soak = "50000ms"', 'soak = "3s"').replace('final_soak = "30000ms"', 'final_soak = "1s"')
    head = f'handoff = "{handoff}"\nnodes = [{", ".join(json.dumps(t) for t in targets)}]\n'
    probes = "".join(
        f'[[gates.probes]]\nservice = "{n}"\nkind = "http"\nport = {p}\n'
        for n, _, p in services)
    with open(f"{d}/plan.toml", "w") as f:
        f.write(head + plan + "\nprobe_failures = 1\n" + probes)
    env = dict(os.environ, XDG_STATE_HOME=d)
    out = subprocess.run(
        [binary, "--log-file", f"{d}/upgrade.log", "upgrade", "--headless", "--plan",
         f"{d}/plan.toml", "--kubeconfig", f"{d}/kc"],
        env=env, capture_output=True, text=True, timeout=900)
    lab.terminate()
    lab.wait()
    lines = [json.loads(l) for l in out.stdout.splitlines() if l.strip()]
    exit_line = next(l for l in lines if l["type"] == "exit")
    if exit_line["code"] != 0:
        sys.exit(f"rollout failed ({d}): {exit_line}")
    handoffs = []
    for node in targets:
        label = next((ts(l["at"]) for l in lines if l["type"] == "action"
                      and l["action"]["action"] == "label" and l["action"]["node"] == node), None)
        moved = next((ts(l["at"]) for l in lines if l["type"] == "event"
                      and l["text"].startswith(f"{node}: handoff moved")), None)
        done = next((ts(l["at"]) for l in lines if l["type"] == "event"
                     and l["text"].startswith(f"{node}: handoff done")), None)
        if label is not None:
            handoffs.append((node, moved - label, done - label))
    lab_windows = [json.loads(l) for l in open(f"{d}/lab-outages.jsonl")] if os.path.exists(f"{d}/lab-outages.jsonl") else []
    lab_total = sum(ts(w["end"]) - ts(w["start"]) for w in lab_windows)
    return {
        "nodes": count, "handoff": handoff, "upgraded": targets,
        "handoffs": handoffs, "cockpit_outage": exit_line["outage"]["total_secs"],
        "per_node": {n["node"]: n["secs"] for n in exit_line["outage"]["nodes"]},
        "lab_outage": round(lab_total, 3), "lab_windows": len(lab_windows), "dir": d,
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", default="target/debug/k3s-cockpit")
    p.add_argument("--sizes", default="3,100", help="node counts, or `incident` (the demo's scenario)")
    args = p.parse_args()
    print("generated: time scale 10x, handoff_settle 1s; incident: time scale 4x, handoff_settle 2.5s;"
          " probes every 1s, one failure is DOWN")
    for count in [s if s == "incident" else int(s) for s in args.sizes.split(",")]:
        for handoff in ["auto", "off"]:
            r = run(args.bin, count, handoff)
            print(json.dumps(r))
            for node, moved, done in r["handoffs"]:
                print(f"  {count} nodes, {node}: label -> moved {moved:.3f}s, label -> probes settled green {done:.3f}s")


if __name__ == "__main__":
    main()
