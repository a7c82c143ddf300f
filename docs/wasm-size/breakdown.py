#!/usr/bin/env python3
"""Where a wasm file's bytes go: its sections, and its code by kind of function.

Reads the function names of the wasm's `name` section, so give it a build that keeps them:
wasm-bindgen without --remove-name-section, and wasm-opt with -g (docs/performance-notes.md,
section 19, has the commands). Names are Rust's mangled symbols; each function is put in the
first kind whose test matches its name.

Usage: breakdown.py FILE.wasm [TOP_FUNCTIONS]
"""

import collections
import sys

KINDS = [
    # Decoding: serde's derived visitors, instantiated with serde_json's deserializer.
    ("decode (serde derives + serde_json)",
     lambda n: any(s in n for s in ("Deserial", "visit_", "Visitor", "deserialize", "serde_json..de", "10serde_json2de"))),
    ("encode (serde derives + serde_json)",
     lambda n: "erializ" in n or "serde_json" in n),
    ("formatting (core::fmt, float printing)", lambda n: "flt2dec" in n or "fmt" in n),
    ("omnikv_viz (the page)", lambda n: "omnikv_viz" in n),
    ("omnikv_core", lambda n: "omnikv_core" in n),
    ("wasm-bindgen, js-sys, web-sys", lambda n: any(s in n for s in ("wasm_bindgen", "js_sys", "web_sys"))),
    ("std, alloc, core (collections, sorting, allocator)", lambda n: True),
]

SECTION_NAMES = {1: "type", 2: "import", 3: "function", 5: "memory", 6: "global", 7: "export",
                 9: "element", 10: "code", 11: "data", 12: "data count"}


def leb128(data, i):
    result, shift = 0, 0
    while True:
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, i


def read(path):
    data = open(path, "rb").read()
    sections, bodies, names, imported = [], [], {}, 0
    i = 8
    while i < len(data):
        sid = data[i]
        size, i = leb128(data, i + 1)
        end = i + size
        if sid == 0:
            length, j = leb128(data, i)
            name = data[j:j + length].decode()
            sections.append(("custom " + name, size))
            j += length
            while name == "name" and j < end:
                sub = data[j]
                sub_size, j = leb128(data, j + 1)
                sub_end = j + sub_size
                if sub == 1:
                    count, j = leb128(data, j)
                    for _ in range(count):
                        idx, j = leb128(data, j)
                        length, j = leb128(data, j)
                        names[idx] = data[j:j + length].decode("utf8", "replace")
                        j += length
                j = sub_end
        else:
            sections.append((SECTION_NAMES.get(sid, str(sid)), size))
            if sid == 2:
                count, j = leb128(data, i)
                for _ in range(count):
                    for _ in range(2):
                        length, j = leb128(data, j)
                        j += length
                    kind = data[j]
                    j += 1
                    if kind == 0:
                        _, j = leb128(data, j)
                        imported += 1
                    elif kind == 1:
                        j += 1
                        flags, j = leb128(data, j)
                        _, j = leb128(data, j)
                        if flags & 1:
                            _, j = leb128(data, j)
                    elif kind == 2:
                        flags, j = leb128(data, j)
                        _, j = leb128(data, j)
                        if flags & 1:
                            _, j = leb128(data, j)
                    elif kind == 3:
                        j += 2
            if sid == 10:
                count, j = leb128(data, i)
                for k in range(count):
                    length, body = leb128(data, j)
                    bodies.append((imported + k, length + (body - j)))
                    j = body + length
        i = end
    return len(data), sections, bodies, names


def main():
    path = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    total, sections, bodies, names = read(path)
    print(f"{path}: {total} bytes")
    for name, size in sections:
        print(f"  section {name:<24} {size:>9}")
    code = sum(size for _, size in bodies)
    by_kind = collections.Counter()
    for idx, size in bodies:
        name = names.get(idx, "")
        kind = next(label for label, test in KINDS if test(name))
        by_kind[kind] += size
    print(f"code: {code} bytes in {len(bodies)} functions")
    for label, _ in KINDS:
        print(f"  {label:<52} {by_kind[label]:>9} {100 * by_kind[label] / code:5.1f}%")
    for idx, size in sorted(bodies, key=lambda b: -b[1])[:top]:
        print(f"  {size:>7} {names.get(idx, '?')[:150]}")


if __name__ == "__main__":
    main()
