"""The abandoned-stream storm of issue 15 (finding 2), as a library for the
integration tests and as a command for measuring by hand:

    python3 tests/integration/h2_storm.py PORT [CLIENTS] [STREAMS] [AUTHORITY]

CLIENTS h2c (prior knowledge) connections are opened at once; each writes the
connection preface, an empty SETTINGS and STREAMS request HEADERS frames
(GET, END_STREAM, HPACK literals only: no dynamic table state), reads
nothing, and then every socket is closed. Each request asks the upstream for
a 2 s delay and carries `id=storm-C-S`, so that an upstream log shows which
of them, if any, arrived. Raw sockets: no HTTP/2 library reads on our
behalf, as the attacker of the finding did not."""
import socket
import struct
import sys

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind, flags, stream_id, payload=b""):
    """One HTTP/2 frame (RFC 9113 §4.1)."""
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream_id) + payload


def literal(index, value):
    """HPACK literal header field without indexing, indexed name
    (RFC 7541 §6.2.2); `index` < 15, `value` < 127 bytes."""
    value = value.encode() if isinstance(value, str) else value
    return bytes([index]) + bytes([len(value)]) + value


def request_block(path, authority):
    # Static table (RFC 7541 Appendix A): 1 :authority, 2 :method GET,
    # 4 :path, 6 :scheme http.
    return literal(2, "GET") + literal(6, "http") + literal(4, path) + literal(1, authority)


def connection_bytes(client, streams, authority="h2", delay_ms=2000):
    out = [PREFACE, frame(0x4, 0, 0)]  # SETTINGS, no parameters
    for s in range(streams):
        path = f"/storm?delay={delay_ms}&id=storm-{client}-{s}"
        out.append(frame(0x1, 0x5, 2 * s + 1, request_block(path, authority)))  # HEADERS END_STREAM|END_HEADERS
    return b"".join(out)


def storm(port, clients, streams, authority="h2", host="127.0.0.1"):
    """Opens `clients` connections, writes each one's streams, then closes
    them all. Returns the number of connections that took all their bytes."""
    socks = []
    sent = 0
    try:
        for c in range(clients):
            s = socket.create_connection((host, port), timeout=10)
            socks.append(s)
            s.sendall(connection_bytes(c, streams, authority))
            sent += 1
    finally:
        for s in socks:
            s.close()
    return sent


if __name__ == "__main__":
    port = int(sys.argv[1])
    clients = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    streams = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    authority = sys.argv[4] if len(sys.argv) > 4 else "h2"
    print(f"{storm(port, clients, streams, authority)} connections x {streams} streams written and closed")
