#!/usr/bin/env python3
"""Turns `perf script` output into folded stacks and a static flame graph (SVG).

    perf script -i perf.data | docs/flamegraphs/flamegraph.py --title "puts, 64 clients" \
        --folded out.folded > out.svg

Each stack is rooted at its thread's name (tokio's workers, RocksDB's, the node's own), so a
graph of three node processes adds their threads of the same name together. The SVG carries
no script: hovering a frame shows its name and share through the SVG's own <title>, and any
browser or image viewer draws it. Frames under --min-percent of the samples are left out to
keep the file small; their time stays in their parent's width.
"""

import argparse
import html
import itertools
import re
import sys
import zlib
from collections import Counter

# Rust's legacy mangling leaves a hash on every demangled name; graphs of two builds should
# name the same function the same way.
HASH = re.compile(r"::h[0-9a-f]{16}$")
OFFSET = re.compile(r"\+0x[0-9a-f]+$")
WIDTH_PX = 1200
ROW_PX = 16
CHAR_PX = 7


def without_generics(symbol):
    """`a::B<T>::f<U>` -> `a::B::f`: generic arguments make most Rust names unreadably long.
    A qualified path's own brackets (`<T as Trait>::f`: a bracket that starts a path or a
    type) stay, with the generic arguments inside them removed in turn."""
    out, kept = [], []
    for i, c in enumerate(symbol):
        if c == "<":
            starts_type = i == 0 or symbol[i - 2 : i] == "::" or symbol[i - 1] in " (&,[*"
            kept.append(starts_type and (not kept or kept[-1]))
            if kept[-1]:
                out.append(c)
        elif c == ">" and kept:
            if kept.pop():
                out.append(c)
        elif not kept or kept[-1]:
            out.append(c)
    return "".join(out)


def frame_name(line):
    """The function a `perf script` stack line names, without its address, offset, hash and
    generic arguments; `None` for a frame perf could not name."""
    _addr, _, rest = line.strip().partition(" ")
    symbol, _, _dso = rest.rpartition(" (")
    symbol = HASH.sub("", OFFSET.sub("", symbol.strip()))
    if not symbol or symbol == "[unknown]":
        return None
    return without_generics(symbol)


def fold(lines):
    """Counts each stack, outermost frame first, under its thread's name."""
    stacks = Counter()
    thread, frames = None, []
    # A blank line ends each sample; one more ends the last. `perf script` writes hundreds of
    # megabytes for a long recording, so its lines are read as they come.
    for line in itertools.chain(lines, [""]):
        if not line.strip():
            if thread is not None and frames:
                stacks[";".join([thread] + frames[::-1])] += 1
            thread, frames = None, []
        elif line[0] not in " \t":
            thread = re.split(r"\s+\d+(/\d+)?\s+", line.strip(), maxsplit=1)[0]
        elif name := frame_name(line):
            frames.append(name.replace(";", ","))
    return stacks


def tree(stacks):
    """A nested {name: [count, children]} of the folded stacks."""
    root = [0, {}]
    for stack, count in stacks.items():
        node = root
        node[0] += count
        for name in stack.split(";"):
            node = node[1].setdefault(name, [0, {}])
            node[0] += count
    return root


def colour(name):
    """Warm colours, stable per name, so one function has one colour in every graph."""
    h = zlib.crc32(name.encode())
    return f"rgb({205 + h % 50},{80 + (h >> 8) % 120},{30 + (h >> 16) % 40})"


def svg(stacks, title, min_percent):
    root = tree(stacks)
    total = max(root[0], 1)
    rects = []

    def depth_of(node):
        return 1 + max((depth_of(c) for c in node[1].values()), default=0)

    height_px = (depth_of(root) + 2) * ROW_PX
    minimum = total * min_percent / 100

    def draw(node, x, depth):
        for name, child in sorted(node[1].items()):
            count = child[0]
            if count >= minimum:
                w = WIDTH_PX * count / total
                y = height_px - (depth + 1) * ROW_PX
                label = html.escape(f"{name} ({count} samples, {100 * count / total:.2f}%)")
                text = name if len(name) * CHAR_PX < w else name[: max(int(w / CHAR_PX) - 2, 0)] + ".."
                rects.append(
                    f'<g><title>{label}</title><rect x="{x:.1f}" y="{y}" width="{w:.1f}" '
                    f'height="{ROW_PX - 1}" fill="{colour(name)}"/>'
                    + (f'<text x="{x + 3:.1f}" y="{y + ROW_PX - 4}">{html.escape(text)}</text>' if w > 3 * CHAR_PX else "")
                    + "</g>"
                )
                draw(child, x, depth + 1)
            x += WIDTH_PX * count / total

    draw(root, 0.0, 0)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH_PX}" height="{height_px}" '
        f'font-family="monospace" font-size="11">'
        f'<rect width="100%" height="100%" fill="#fafafa"/>'
        f'<text x="4" y="13" font-size="13">{html.escape(title)} ({total} samples)</text>'
        + "".join(rects)
        + "</svg>\n"
    )


def summary(stacks, top):
    """The threads' shares, and the `top` functions by the share of samples they are on the
    stack of (each counted once per stack), as text."""
    total = max(sum(stacks.values()), 1)
    threads, inclusive = Counter(), Counter()
    for stack, count in stacks.items():
        frames = stack.split(";")
        threads[frames[0]] += count
        for name in set(frames[1:]):
            inclusive[name] += count
    lines = [f"{total} samples; by thread:"]
    lines += [f"  {100 * c / total:5.1f}%  {t}" for t, c in threads.most_common()]
    lines.append(f"on the stack of (top {top}):")
    lines += [f"  {100 * c / total:5.1f}%  {n}" for n, c in inclusive.most_common(top)]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--title", default="flame graph")
    parser.add_argument("--folded", help="also write the folded stacks here")
    parser.add_argument("--min-percent", type=float, default=0.1)
    parser.add_argument("--summary", help="also write the threads' and top functions' shares here")
    args = parser.parse_args()
    stacks = fold(sys.stdin)
    if args.summary:
        with open(args.summary, "w") as f:
            f.write(summary(stacks, 60))
    if args.folded:
        with open(args.folded, "w") as f:
            for stack, count in sorted(stacks.items()):
                f.write(f"{stack} {count}\n")
    sys.stdout.write(svg(stacks, args.title, args.min_percent))


if __name__ == "__main__":
    main()
