#!/usr/bin/env python3
"""The agent's parts own their state and call each other one way.

Checks, on the object files of a build (default build/release):
  1. no call cycle among agent/*.c: an edge A -> B when A's object needs a
     global symbol B's object defines (static inline helpers count where
     they are compiled in);
  2. no include cycle among agent/*.h and lib/*.h;
  3. no header but agent/agent.h names the Agent type, and only the
     composition root (agent.c, ha_exec.c: the act step, main.c) includes
     agent.h: every part takes its own struct.
Prints the cycles or offenders and exits 1; prints the layering and exits 0
otherwise. Usage: tests/check_parts.py [BUILD_DIR]
"""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def symbols(obj):
    out = subprocess.run(["nm", obj], check=True, capture_output=True, text=True).stdout
    defined, needed = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "TDBR":
            defined.add(parts[2])
        elif len(parts) == 2 and parts[0] == "U":
            needed.add(parts[1])
    return defined, needed


def cycles(graph):
    """Tarjan's strongly connected components of size > 1 (or self loops)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "release")
    objdir = os.path.join(build, "agent")
    srcs = sorted(f[:-2] for f in os.listdir(os.path.join(ROOT, "agent")) if f.endswith(".c"))
    syms = {}
    for name in srcs:
        obj = os.path.join(objdir, name + ".o")
        if not os.path.exists(obj):
            print(f"check_parts: {obj} is missing: build first", file=sys.stderr)
            return 2
        syms[name] = symbols(obj)
    owner = {}
    for name, (defined, _) in syms.items():
        for s in defined:
            owner[s] = name
    calls = {name: set() for name in srcs}
    for name, (_, needed) in syms.items():
        for s in needed:
            if s in owner and owner[s] != name:
                calls[name].add(owner[s])
    failed = False
    for comp in cycles(calls):
        failed = True
        print("call cycle among agent files: " + " <-> ".join(c + ".c" for c in comp))

    includes = {}
    inc_re = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
    headers = {}
    for d in ("agent", "lib"):
        for f in os.listdir(os.path.join(ROOT, d)):
            if f.endswith(".h"):
                headers[f] = os.path.join(ROOT, d, f)
    for f, path in headers.items():
        with open(path) as fh:
            includes[f] = {h for h in inc_re.findall(fh.read()) if h in headers}
    for comp in cycles(includes):
        failed = True
        print("include cycle: " + " <-> ".join(comp))

    agent_type = re.compile(r"\bAgent\b")
    for f in sorted(os.listdir(os.path.join(ROOT, "agent"))):
        if f.endswith(".h") and f != "agent.h":
            with open(os.path.join(ROOT, "agent", f)) as fh:
                for n, line in enumerate(fh, 1):
                    code = line.split("/*")[0].split("//")[0]
                    if agent_type.search(code):
                        failed = True
                        print(f"agent/{f}:{n}: a part's header names the Agent type: "
                              f"give the part its own struct")
    root = {"agent.c", "ha_exec.c", "main.c"}
    for f in sorted(os.listdir(os.path.join(ROOT, "agent"))):
        if f.endswith(".c") and f not in root:
            with open(os.path.join(ROOT, "agent", f)) as fh:
                if re.search(r'^\s*#\s*include\s+"agent\.h"', fh.read(), re.M):
                    failed = True
                    print(f"agent/{f}: includes agent.h: a part takes its own struct, "
                          f"not the Agent")
    if failed:
        return 1
    print(f"check_parts: {len(srcs)} agent files, no call or include cycle; only "
          f"{', '.join(sorted(root))} see the Agent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
