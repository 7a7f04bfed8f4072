#!/usr/bin/env python3
"""Starts a server on listening sockets bound here, on ports the kernel picks.

usage: listen_fds.py N PORTS_FILE [--template IN OUT] -- CMD [ARGS...]

Binds N TCP listeners on 127.0.0.1 port 0 and hands them to CMD as file
descriptors 3 .. 3+N-1 (exec: CMD gets this process's pid). The ports, in
order and space-separated, are written to PORTS_FILE (atomically) before the
exec; with --template, IN is copied to OUT with @PORT0@, @PORT1@, ... and
@FD0@, @FD1@, ... replaced, for CMD's configuration.

Why: choosing a free port, releasing it and letting the server bind it later
races with every other process on the machine (scripts/bench once aborted on
"cannot listen ... Address already in use"). A socket bound here is never
released. HAProxy takes such sockets as `bind fd@3`; nginx takes them from
the NGINX environment variable ("3;4;", its binary-upgrade hand-over, set
here), matching them to `listen 127.0.0.1:PORT` by address.
"""
import os
import socket
import sys


def main(argv):
    if "--" not in argv:
        print(__doc__, file=sys.stderr)
        return 2
    cut = argv.index("--")
    opts, cmd = argv[1:cut], argv[cut + 1:]
    if len(opts) not in (2, 5) or not cmd:
        print(__doc__, file=sys.stderr)
        return 2
    n, ports_file = int(opts[0]), opts[1]
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        s.listen(4096)
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    # Move the sockets out of the way first, then onto 3, 4, ...: a socket
    # may already sit on one of those numbers.
    high = [os.dup(s.fileno()) for s in socks]
    for s in socks:
        s.close()
    for i, h in enumerate(high):
        os.dup2(h, 3 + i, inheritable=True)
    for h in high:
        if h >= 3 + n:
            os.close(h)
    if len(opts) == 5:
        if opts[2] != "--template":
            print(__doc__, file=sys.stderr)
            return 2
        with open(opts[3]) as f:
            text = f.read()
        for i, p in enumerate(ports):
            text = text.replace(f"@PORT{i}@", str(p)).replace(f"@FD{i}@", str(3 + i))
        with open(opts[4], "w") as f:
            f.write(text)
    tmp = ports_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(" ".join(map(str, ports)) + "\n")
    os.rename(tmp, ports_file)
    os.environ["NGINX"] = "".join(f"{3 + i};" for i in range(n))
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
