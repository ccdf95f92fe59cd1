"""A fault-injecting TCP proxy between hdbrepl nodes on loopback.

Node i advertises 127.0.0.(2+i) (its `hostname`, the address every peer dials) but listens
and dials from 127.0.0.(102+i) (its `bind`). The proxy listens on each advertised
address:port and forwards to the matching bind address:port. It tells who is dialing from
the source address of the accepted connection (127.0.0.(102+j) is node j) and dials the
upstream side FROM node j's advertised address, so the receiving node's IP authentication
(routes and known nodes, by hostname) sees the address it expects.

Each unordered pair of nodes has a link state, set from the harness (any thread):

    up         bytes flow
    reset      every connection of the pair is closed now; new ones are accepted and closed
    blackhole  nothing is read or forwarded on existing connections (the bytes stay queued,
               nothing is lost or reordered); new connections are accepted but not connected
               upstream until the state changes. Peers notice only through their ping timeout.
    slow       every chunk is delivered `delay_ms` after it was read (order kept)

The proxy runs its own asyncio loop in a daemon thread. Every wait is bounded by the loop
itself (it stops with stop()); every connection is closed at stop().
"""
import asyncio
import threading
import time

CHUNK = 65536
QUEUE_CHUNKS = 256  # per direction of a slow connection: bounded memory


def pair_key(a, b):
    return (a, b) if a <= b else (b, a)


class _Pair:
    def __init__(self):
        self.state = "up"
        self.delay_ms = 0
        self.flowing = None  # asyncio.Event: set unless blackholed (made in the loop)


class _Conn:
    """One proxied TCP connection: dialer -> listener (node indexes)."""

    def __init__(self, proxy, cid, dialer, listener, creader, cwriter):
        self.proxy = proxy
        self.cid = cid
        self.dialer = dialer
        self.listener = listener
        self.creader = creader
        self.cwriter = cwriter
        self.ureader = None
        self.uwriter = None
        self.closed = False
        self.tasks = []

    def close(self, why):
        if self.closed:
            return
        self.closed = True
        self.proxy.stats["closed_" + why] = self.proxy.stats.get("closed_" + why, 0) + 1
        for w in (self.cwriter, self.uwriter):
            if w is not None:
                try:
                    w.transport.abort()  # RST-like: a cut link, not a polite close
                except Exception:
                    pass
        cur = asyncio.current_task()
        for t in self.tasks:
            if t is not cur and not t.done():
                t.cancel()
        self.proxy.conns.discard(self)


class ChaosProxy:
    def __init__(self, advertised, binds, port):
        """advertised[i], binds[i]: node i's hostname and bind address; one port for all."""
        self.advertised = list(advertised)
        self.binds = list(binds)
        self.port = port
        self.n = len(advertised)
        self.pairs = {pair_key(i, j): _Pair() for i in range(self.n) for j in range(i + 1, self.n)}
        self.conns = set()
        self.stats = {"accepted": 0, "unknown_source": 0, "upstream_failed": 0, "bytes": 0}
        self.loop = asyncio.new_event_loop()
        self.servers = []
        self._next_id = 0
        self._thread = threading.Thread(target=self._run, name="chaos-proxy", daemon=True)
        self._started = threading.Event()
        self._start_error = None

    # -- lifecycle (caller's thread) -------------------------------------------------------
    def start(self, timeout=10):
        self._thread.start()
        if not self._started.wait(timeout):
            raise RuntimeError("proxy did not start")
        if self._start_error:
            raise RuntimeError(f"proxy: {self._start_error}")

    def stop(self, timeout=10):
        if not self._thread.is_alive():
            return
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop)
        try:
            fut.result(timeout)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)

    def set_link(self, a, b, state, delay_ms=0, timeout=10):
        """Sets the state of the pair (a, b); returns once it is in force."""
        assert state in ("up", "reset", "blackhole", "slow"), state
        fut = asyncio.run_coroutine_threadsafe(self._set(pair_key(a, b), state, delay_ms), self.loop)
        return fut.result(timeout)

    def link_state(self, a, b):
        p = self.pairs[pair_key(a, b)]
        return p.state, p.delay_ms

    def heal_all(self, timeout=10):
        for (a, b) in list(self.pairs):
            self.set_link(a, b, "up", timeout=timeout)

    def open_connections(self):
        return len(self.conns)

    # -- the loop --------------------------------------------------------------------------
    def _run(self):
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._listen())
        except Exception as e:  # reported to start()
            self._start_error = f"{type(e).__name__}: {e}"
            self._started.set()
            return
        self._started.set()
        self.loop.run_forever()
        self.loop.close()

    async def _listen(self):
        for p in self.pairs.values():
            p.flowing = asyncio.Event()
            p.flowing.set()
        for idx, host in enumerate(self.advertised):
            srv = await asyncio.start_server(lambda r, w, idx=idx: self._accept(idx, r, w), host, self.port,
                                             reuse_address=True)
            self.servers.append(srv)

    async def _shutdown(self):
        for s in self.servers:
            s.close()
        for c in list(self.conns):
            c.close("shutdown")
        for p in self.pairs.values():
            p.flowing.set()
        await asyncio.sleep(0)

    async def _set(self, key, state, delay_ms):
        p = self.pairs[key]
        p.state = state
        p.delay_ms = int(delay_ms) if state == "slow" else 0
        if state == "blackhole":
            p.flowing.clear()
        else:
            p.flowing.set()
        if state == "reset":
            for c in list(self.conns):
                if pair_key(c.dialer, c.listener) == key:
                    c.close("reset")
        return True

    def _who(self, writer):
        peer = writer.get_extra_info("peername")
        ip = peer[0] if peer else None
        return self.binds.index(ip) if ip in self.binds else None

    async def _accept(self, listener, creader, cwriter):
        dialer = self._who(cwriter)
        if dialer is None or dialer == listener:
            self.stats["unknown_source"] += 1
            cwriter.transport.abort()
            return
        self.stats["accepted"] += 1
        self._next_id += 1
        conn = _Conn(self, self._next_id, dialer, listener, creader, cwriter)
        self.conns.add(conn)
        conn.tasks.append(asyncio.current_task())
        pair = self.pairs[pair_key(dialer, listener)]
        try:
            if pair.state == "reset":
                return conn.close("refused")
            # Blackholed: hold the accepted connection, connect upstream only when it heals.
            await pair.flowing.wait()
            if conn.closed:
                return
            if pair.state == "reset":
                return conn.close("refused")
            try:
                conn.ureader, conn.uwriter = await asyncio.wait_for(
                    asyncio.open_connection(self.binds[listener], self.port,
                                            local_addr=(self.advertised[dialer], 0)), 10)
            except (OSError, asyncio.TimeoutError):
                self.stats["upstream_failed"] += 1
                return conn.close("upstream_failed")
            if conn.closed:
                conn.uwriter.transport.abort()
                return
            conn.tasks.append(asyncio.ensure_future(self._pump(conn, pair, conn.creader, conn.uwriter)))
            conn.tasks.append(asyncio.ensure_future(self._pump(conn, pair, conn.ureader, conn.cwriter)))
        except asyncio.CancelledError:
            conn.close("cancelled")

    async def _pump(self, conn, pair, reader, writer):
        """Copies one direction. A slow pair delays each chunk by its delay (order kept: a
        second task delivers from a bounded queue); a blackholed pair neither reads nor
        writes until it flows again."""
        queue = asyncio.Queue(QUEUE_CHUNKS)
        deliver = asyncio.ensure_future(self._deliver(conn, pair, queue, writer))
        conn.tasks.append(deliver)
        try:
            while not conn.closed:
                await pair.flowing.wait()
                data = await reader.read(CHUNK)
                if not data:
                    break
                self.stats["bytes"] += len(data)
                await queue.put((time.monotonic() + pair.delay_ms / 1000.0, data))
            await queue.put((0, b""))  # end of stream after what is queued
        except (ConnectionError, OSError):
            conn.close("error")
        except asyncio.CancelledError:
            pass

    async def _deliver(self, conn, pair, queue, writer):
        try:
            while not conn.closed:
                due, data = await queue.get()
                if not data:
                    return conn.close("eof")
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                await pair.flowing.wait()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            conn.close("error")
        except asyncio.CancelledError:
            pass
