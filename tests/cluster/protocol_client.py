"""A small client of the peer protocol (docs/protocol.md), for hostile-peer tests: it opens a
WebSocket from any loopback address (harness.RawWs), says hello under any name, and sends any
message, well formed or not, in any state. Encoders follow engine/wire.cpp and
engine/txn_record.cpp byte for byte."""
import struct
import time

from harness import RawWs, varint, wstr

# message types (engine/wire.hpp)
HELLO, SUBSCRIBE, TXN, ACK, COPY_START, COPY_TABLE, COPY_ROWS, COPY_END, COPY_ACK, ERROR, REMOVED, COPY_REQUEST, \
    READ_REQUEST, READ_REPLY, FRAGMENT, FRAGMENT_ACK = range(1, 17)


def u64(v):
    return struct.pack("<Q", v & ((1 << 64) - 1))


def svarint(v):
    return varint(((v << 1) ^ (v >> 63)) & ((1 << 64) - 1))


def value(v):
    """A value in the change-record encoding: None, int, float, str (text), bytes (blob)."""
    if v is None:
        return bytes([0])
    if isinstance(v, bool):
        v = int(v)
    if isinstance(v, int):
        return bytes([1]) + svarint(v)
    if isinstance(v, float):
        return bytes([2]) + struct.pack("<d", v)
    if isinstance(v, str):
        return bytes([3]) + wstr(v)
    return bytes([4]) + wstr(bytes(v))


def progress(pairs):
    return varint(len(pairs)) + b"".join(wstr(o) + u64(h) for o, h in pairs)


def subscription(start_after=0, prog=(), exclude=()):
    return u64(start_after) + progress(list(prog)) + varint(len(exclude)) + b"".join(wstr(e) for e in exclude)


def hello(name, url="", needs_copy=False, start_after=0, prog=(), exclude=()):
    return (bytes([HELLO]) + b"HDBR" + bytes([1, 0]) + wstr(name) + wstr(url) + wstr("main") + wstr("") +
            bytes([1 if needs_copy else 0]) + subscription(start_after, prog, exclude))


def subscribe(start_after=0, prog=(), exclude=()):
    return bytes([SUBSCRIBE]) + subscription(start_after, prog, exclude)


def hlc_of_ms(ms):
    return ms << 16


def now_hlc(ahead_ms=0):
    return hlc_of_ms(int(time.time() * 1000) + ahead_ms)


def record(origin, hlc, tables, changes, fmt=1):
    """A change record. tables: [(name, definition)]; changes: [(table index, op, payload)]
    with op 'put' (payload: list of values), 'del' (payload: key), 'create' / 'drop'."""
    out = b"H" + bytes([fmt]) + u64(hlc) + wstr(origin) + varint(len(tables))
    for name, definition in tables:
        out += wstr(name) + wstr(definition)
    out += varint(len(changes))
    for t, op, payload in changes:
        out += varint(t)
        if op == "put":
            out += bytes([1]) + varint(len(payload)) + b"".join(value(v) for v in payload)
        elif op == "del":
            out += bytes([2]) + value(payload)
        elif op == "create":
            out += bytes([3])
        elif op == "drop":
            out += bytes([4])
        else:
            raise ValueError(op)
    return out


def txn(seq, rec):
    return bytes([TXN]) + varint(seq) + rec


def ack(seq):
    return bytes([ACK]) + varint(seq)


def copy_start(total_rows=0, prog=()):
    return bytes([COPY_START]) + varint(total_rows) + progress(list(prog))


def copy_table(name, definition):
    return bytes([COPY_TABLE]) + wstr(name) + wstr(definition)


def copy_rows(table_index, rows):
    """rows: [(hlc, origin, [values])] of live rows."""
    out = bytes([COPY_ROWS]) + varint(table_index) + varint(len(rows))
    for hlc, origin, values in rows:
        out += bytes([1]) + u64(hlc) + wstr(origin) + varint(len(values)) + b"".join(value(v) for v in values)
    return out


def copy_end(seq=0, prog=()):
    return bytes([COPY_END]) + varint(seq) + progress(list(prog))


def copy_ack(chunks):
    return bytes([COPY_ACK]) + varint(chunks)


def error(text):
    return bytes([ERROR]) + wstr(text)


def removed(by):
    return bytes([REMOVED]) + wstr(by)


def copy_request():
    return bytes([COPY_REQUEST])


def read_request(rid, table, key_column, key):
    return bytes([READ_REQUEST]) + varint(rid) + wstr(table) + wstr(key_column) + value(key)


def fragment(total, data):
    """A piece of a message larger than a frame: u64 total, then data to the end."""
    return bytes([FRAGMENT]) + u64(total) + bytes(data)


def fragments(message, piece):
    """The fragments of `message`, `piece` data bytes each, in order."""
    return [fragment(len(message), message[i:i + piece]) for i in range(0, len(message), piece)]


def fragment_ack(received):
    return bytes([FRAGMENT_ACK]) + varint(received)


class Peer:
    """A protocol client connected to dst:port from src; `hello()` answers the node's hello."""

    def __init__(self, src_ip, dst_ip, port, target="/hdbrepl"):
        self.ws = RawWs(src_ip, dst_ip, port, target=target)
        self.status = self.ws.status
        self.node_hello = None
        if self.status == 101:
            f = self.ws.recv_frame(5)
            self.node_hello = f[1] if f else None

    def send(self, payload):
        return self.ws.send_binary(payload)

    def hello(self, name, **kw):
        return self.send(hello(name, **kw))

    def closed(self, timeout=10):
        ok, frames = self.ws.wait_closed(timeout)
        return ok

    def frames(self, timeout=1.0, limit=1000):
        """Frames received within `timeout` (bounded), without waiting for a close."""
        out = []
        deadline = time.monotonic() + timeout
        for _ in range(limit):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                f = self.ws.recv_frame(min(left, 0.5))
            except (EOFError, OSError, TypeError):
                break
            if f:
                out.append(f)
        return out

    def close(self):
        self.ws.close()
