#!/usr/bin/env python3
"""Fail when two sibling modules of the Rust crate use each other, even through others.

The Rust counterpart of import-linter's ``acyclic_siblings`` contract for the
Python package (``pyproject.toml``): for every module with submodules, its
children (each with everything below it) must form an acyclic graph of uses.
A use is any path in non-test code, outside comments, that names a module of
the crate: ``crate::a::b``, ``super::x``, ``self::y``, or a name brought in by
``use super::{a, b}``. Uses of a parent (its own items or re-exports) are not
sibling uses and do not count. Test modules (``#[cfg(test)] mod name { ... }``) are left
out: they may use anything.

Usage: ``scripts/rust-module-cycles.py [SRC]`` (default ``src``); prints each
cycle as ``a -> b -> a`` and exits 1, or prints a one-line summary and exits 0.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

Module = tuple[str, ...]

_PATH = re.compile(r"\b(crate|super|self)((?:::\w+)+)")
_GROUP = re.compile(r"\buse\s+(crate|super|self)((?:::\w+)*)::\{([^}]*)\}", re.S)


def modules(src: Path) -> dict[Module, Path]:
    """Every module file of the crate by its path (``()`` is ``lib.rs``)."""
    found: dict[Module, Path] = {}
    for path in src.rglob("*.rs"):
        parts = path.relative_to(src).with_suffix("").parts
        if parts[-1] in ("mod", "lib", "main"):
            parts = parts[:-1]
        found[parts] = path
    return found


def code(path: Path) -> str:
    """The file's text without comments and without its test module."""
    text = re.sub(r"//[^\n]*", "", path.read_text(encoding="utf-8"))
    while cut := re.search(r"#\[cfg\(test\)\]\s*(pub\s+)?mod\s+\w+\s*\{", text):
        depth, end = 1, cut.end()
        while depth and end < len(text):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            end += 1
        text = text[: cut.start()] + text[end:]
    return text


def resolve(here: Module, head: str, rest: list[str], known: dict[Module, Path]) -> Module:
    """The deepest module of the crate that ``head::rest`` names from module ``here``."""
    if head == "crate":
        base: Module = ()
    elif head == "super":
        base = here[:-1]
        while rest and rest[0] == "super":
            base, rest = base[:-1], rest[1:]
    else:
        base = here
    target = base
    for part in rest:
        if (*target, part) not in known:
            break
        target = (*target, part)
    return target


def uses(known: dict[Module, Path]) -> dict[Module, set[Module]]:
    """Module -> the modules its code names."""
    edges: dict[Module, set[Module]] = defaultdict(set)
    for here, path in known.items():
        text = code(path)
        for m in _GROUP.finditer(text):
            prefix = [p for p in m.group(2).split("::") if p]
            for item in m.group(3).split(","):
                name = item.strip().split(" as ")[0].split("::")[0].strip()
                if name and name != "self":
                    edges[here].add(resolve(here, m.group(1), [*prefix, name], known))
        for m in _PATH.finditer(text):
            rest = [p for p in m.group(2).split("::") if p]
            edges[here].add(resolve(here, m.group(1), rest, known))
    return edges


def cycles(known: dict[Module, Path], edges: dict[Module, set[Module]]) -> list[list[Module]]:
    """The cycles among the children of every module (one per set of modules in a cycle)."""
    found: list[list[Module]] = []
    parents = {m[:-1] for m in known if m}
    for parent in sorted(parents):
        depth = len(parent)
        graph: dict[Module, set[Module]] = defaultdict(set)
        for a, targets in edges.items():
            for b in targets:
                if a[:depth] == parent == b[:depth] and len(a) > depth and len(b) > depth:
                    ca, cb = a[: depth + 1], b[: depth + 1]
                    if ca != cb:
                        graph[ca].add(cb)
        found.extend(_sibling_cycles(graph))
    return found


def _sibling_cycles(graph: dict[Module, set[Module]]) -> list[list[Module]]:
    cycles: list[list[Module]] = []
    seen: set[Module] = set()
    for start in sorted(graph):
        # Breadth-first search back to start: the shortest cycle through it.
        previous: dict[Module, Module] = {}
        frontier = [start]
        while frontier and start not in previous:
            nxt = []
            for node in frontier:
                for succ in sorted(graph.get(node, ())):
                    if succ not in previous:
                        previous[succ] = node
                        nxt.append(succ)
            frontier = nxt
        if start in previous:
            cycle = [start]
            node = previous[start]
            while node != start:
                cycle.append(node)
                node = previous[node]
            cycle.reverse()
            key = frozenset(cycle)
            if not key & seen:
                seen |= key
                cycles.append([start, *cycle])
    return cycles


def main() -> int:
    """Check the crate; print the cycles found."""
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "src")
    known = modules(src)
    edges = uses(known)
    found = cycles(known, edges)
    for cycle in found:
        print(" -> ".join("::".join(m) for m in cycle), file=sys.stderr)
    count = sum(len(t) for t in edges.values())
    if found:
        print(f"{len(found)} module cycle(s) in {src}/", file=sys.stderr)
        return 1
    print(f"no module cycle: {len(known)} modules, {count} uses between them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
