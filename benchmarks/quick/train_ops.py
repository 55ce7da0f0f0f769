"""Sums a Chrome trace of train_ops.cpp by operator (self time: an operator's own time less
the operators inside it), per step, with each operator's share of the traced time.
    /usr/bin/python3 benchmarks/quick/train_ops.py TRACE [STEPS]"""
import collections
import json
import sys

trace = json.load(open(sys.argv[1]))
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
events = [e for e in (trace["traceEvents"] if isinstance(trace, dict) else trace) if e.get("ph") == "X"]
events.sort(key=lambda e: (e["ts"], -e["dur"]))
own = collections.defaultdict(float)
top = 0.0
stack = []
for e in events:
    while stack and stack[-1]["ts"] + stack[-1]["dur"] <= e["ts"]:
        stack.pop()
    if stack:
        own[stack[-1]["name"]] -= e["dur"]
    else:
        top += e["dur"]
    own[e["name"]] += e["dur"]
    stack.append(e)
print("time inside ATen operators: %.1f ms per step" % (top / steps / 1000))
for name, us in sorted(own.items(), key=lambda kv: -kv[1])[:20]:
    print("%8.1f ms  %5.1f %%  %s" % (us / steps / 1000, 100 * us / top, name))
