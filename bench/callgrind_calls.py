#!/usr/bin/env python3
"""Calls per request from a callgrind output file, with the top callers.

usage: callgrind_calls.py CALLGRIND_OUT REQUESTS [REGEX ...]

For each REGEX (a function name pattern; default: the allocator and libevent
timer/event calls and a few libc calls worth knowing about on a proxy's hot
path) prints how many times per request matching functions were called, and
from where. Reads the "fn=/cfn=/calls=" records of callgrind's format
(names compressed as "(id) name" the first time, "(id)" after).
"""
import collections
import re
import sys

DEFAULT = [r"^malloc$", r"^free$", r"^calloc$", r"^realloc$", r"^operator new", r"^event_new$",
           r"^event_free$", r"^event_add$", r"^event_del$", r"^evbuffer_add$", r"vfprintf_internal$",
           r"^inet_pton$", r"^inet_ntop$", r"^clock_gettime", r"^memcpy|__memcpy"]


def parse(path):
    names, edges, fn, cfn = {}, collections.Counter(), None, None

    def name(tok):
        m = re.match(r"\((\d+)\)(?: (.*))?", tok)
        if not m:
            return tok
        if m.group(2):
            names[m.group(1)] = m.group(2)
        return names.get(m.group(1), tok)

    for line in open(path, errors="replace"):
        if line.startswith("fn="):
            fn = name(line[3:].strip())
        elif line.startswith("cfn="):
            cfn = name(line[4:].strip())
        elif line.startswith("calls="):
            edges[(fn, cfn)] += int(line[6:].split()[0])
    return edges


def short(f):
    f = re.sub(r"std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >", "std::string", f)
    f = re.sub(r"std::basic_string_view<char, std::char_traits<char> >", "std::string_view", f)
    return f if len(f) <= 110 else f[:107] + "..."


def main():
    path, reqs = sys.argv[1], float(sys.argv[2])
    pats = sys.argv[3:] or DEFAULT
    edges = parse(path)
    for pat in pats:
        rows = collections.Counter()
        for (f, c), v in edges.items():
            if c and re.search(pat, c):
                rows[f] += v
        total = sum(rows.values())
        if not total:
            continue
        print(f"{total / reqs:9.2f}  {pat}")
        for f, v in rows.most_common(4):
            print(f"{v / reqs:15.2f}  from {short(f or '?')}")


if __name__ == "__main__":
    main()
