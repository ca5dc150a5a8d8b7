#!/usr/bin/env python3
"""A unary gRPC call over raw HTTP/2 (h2c, prior knowledge), for what gRPC's
own clients will not send: any grpc-timeout (they round it), any bytes in a
header (they send only printable ones).

  raw_h2_call.py HOST PORT PATH TIMEOUT PAYLOAD_HEX TRIES [NAME=VALUE_HEX ...]

TIMEOUT is a grpc-timeout value or "-" for none; each NAME=VALUE_HEX adds a
header. Prints one line per try: the first grpc-status the server sent,
"rst" or "closed". HPACK literals only: the first grpc-status on a new
connection is sent as a literal, whether the handler answered or gRPC's
deadline timer did (its trailers are then followed by RST_STREAM).
"""
import socket
import struct
import sys

host, port, path, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
payload, tries = bytes.fromhex(sys.argv[5]), int(sys.argv[6])
extra = [(name.encode(), bytes.fromhex(value))
         for name, value in (arg.split("=", 1) for arg in sys.argv[7:])]


def frame(kind, flags, stream, body):
    return struct.pack(">I", len(body))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + body


def literal(name, value):  # literal header field, never indexed, plain strings
    assert len(name) < 127 and len(value) < 127
    return b"\x10" + bytes([len(name)]) + name + bytes([len(value)]) + value


def one_call():
    s = socket.create_connection((host, port), timeout=10)
    headers = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", path.encode()),
               (b":authority", b"%s:%d" % (host.encode(), port)),
               (b"content-type", b"application/grpc"), (b"te", b"trailers")]
    if timeout != "-":
        headers.append((b"grpc-timeout", timeout.encode()))
    block = b"".join(literal(n, v) for n, v in headers + extra)
    message = b"\x00" + struct.pack(">I", len(payload)) + payload
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b"") +
              frame(1, 4, 1, block) + frame(0, 1, 1, message))
    data, status = b"", None
    while status is None:
        chunk = s.recv(65536)
        if not chunk:
            status = "closed"
            break
        data += chunk
        while status is None and len(data) >= 9:
            length = int.from_bytes(data[:3], "big")
            if len(data) < 9 + length:
                break
            kind, flags = data[3], data[4]
            stream = int.from_bytes(data[5:9], "big") & 0x7fffffff
            body, data = data[9:9 + length], data[9 + length:]
            if kind == 4 and not flags & 1:
                s.sendall(frame(4, 1, 0, b""))
            elif kind == 6 and not flags & 1:
                s.sendall(frame(6, 1, 0, body))
            elif kind == 3 and stream == 1:
                status = "rst"
            elif kind == 1 and stream == 1 and b"grpc-status" in body:
                at = body.index(b"grpc-status") + len(b"grpc-status")
                size = body[at] & 0x7f
                status = "huffman" if body[at] & 0x80 else body[at + 1:at + 1 + size].decode()
    s.close()
    print(status, flush=True)


for _ in range(tries):
    one_call()
