#!/usr/bin/env python3
"""List the code over the project's size limits: every function over 80
lines and every file over 1,000 lines in src/, tests left out (`#[cfg(test)]`
items and files under a `tests` folder). Exits 1 when anything is listed.

Usage: scripts/long_code.py [SRC_DIR] [--fn-limit N] [--file-limit N]

A function's lines run from its `fn` line to its closing brace; a file's
lines are its lines outside `#[cfg(test)]` items. A function that is
essentially a table may stay long: the list names it, a reader decides.
"""

import argparse
import re
import sys
from pathlib import Path


def code_mask(text):
    """`text` with comments, strings and char literals blanked to spaces
    (newlines kept), so braces and keywords can be matched in what is left."""
    out = list(text)
    i, n = 0, len(text)

    def blank(a, b):
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif m := re.compile(r'b?r(#*)"').match(text, i):
            if i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_"):
                i += 1
                continue
            end = text.find('"' + m.group(1), m.end())
            j = n if end < 0 else end + 1 + len(m.group(1))
            blank(i, j)
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            blank(i, j + 1)
            i = j + 1
        elif c == "'":
            # A char literal ('a', '\n', '\u{1F600}'), not a lifetime ('a).
            m = re.compile(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'").match(text, i)
            if m:
                blank(i, m.end())
                i = m.end()
            else:
                i += 1
        else:
            i += 1
    return "".join(out)


def matching_brace(code, open_at):
    depth = 0
    for k in range(open_at, len(code)):
        if code[k] == "{":
            depth += 1
        elif code[k] == "}":
            depth -= 1
            if depth == 0:
                return k
    return len(code) - 1


def item_end(code, start):
    """Where the item starting at `start` ends: its matching `}`, or its `;`."""
    for k in range(start, len(code)):
        if code[k] == "{":
            return matching_brace(code, k)
        if code[k] == ";":
            return k
    return len(code) - 1


def test_spans(code):
    """Character spans of the items under `#[cfg(test)]`."""
    spans = []
    for m in re.finditer(r"#\[cfg\(test\)\]", code):
        spans.append((m.start(), item_end(code, m.end())))
    return spans


FN = re.compile(r"\bfn\s+([A-Za-z_][A-Za-z0-9_]*)")


def functions(code, skip):
    """(name, first line, line count) of each function body outside `skip`."""
    line_of = lambda pos: code.count("\n", 0, pos) + 1
    for m in FN.finditer(code):
        if any(a <= m.start() <= b for a, b in skip):
            continue
        # The body's brace: the first `{` after the signature, unless a `;`
        # (a trait method without a body) comes first.
        k = m.end()
        while k < len(code) and code[k] not in "{;":
            k += 1
        if k >= len(code) or code[k] == ";":
            continue
        end = matching_brace(code, k)
        first = line_of(m.start())
        yield m.group(1), first, line_of(end) - first + 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", nargs="?", default="src")
    ap.add_argument("--fn-limit", type=int, default=80)
    ap.add_argument("--file-limit", type=int, default=1000)
    args = ap.parse_args()
    root = Path(args.src)
    long_files, long_fns = [], []
    for path in sorted(root.rglob("*.rs")):
        if "tests" in path.relative_to(root).parts[:-1]:
            continue
        text = path.read_text()
        code = code_mask(text)
        skip = test_spans(code)
        tested = sum(code.count("\n", a, b) + 1 for a, b in skip)
        lines = text.count("\n") + (not text.endswith("\n") and bool(text))
        if lines - tested > args.file_limit:
            long_files.append((lines - tested, path))
        for name, first, count in functions(code, skip):
            if count > args.fn_limit:
                long_fns.append((count, f"{path}:{first}", name))
    print(f"files over {args.file_limit} lines (tests left out): {len(long_files)}")
    for count, path in sorted(long_files, reverse=True):
        print(f"  {count:5}  {path}")
    print(f"functions over {args.fn_limit} lines (tests left out): {len(long_fns)}")
    for count, where, name in sorted(long_fns, reverse=True):
        print(f"  {count:5}  {where}  {name}")
    return 1 if long_files or long_fns else 0


if __name__ == "__main__":
    sys.exit(main())
