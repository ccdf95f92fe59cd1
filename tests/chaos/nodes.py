"""Node processes for the chaos harness: tests/cluster/harness.py's Node, made safe to kill,
stop and restart from the main thread while another thread is in the middle of a request.

- The request lock is re-entrant, and spawn/stop/restart hold it, so a writer thread never
  talks to a half-started or half-stopped process (it waits, then finds it not running).
- kill() sends SIGKILL and reaps the process first, without the lock (the writer may hold
  it, waiting for a reply that will never come: it then sees end of file and lets go), and
  closes the pipes only under the lock, so a writer can never read a reply from the next
  process.
- A node may run with a skewed wall clock: the process preloads tests/chaos/skewed_clock.c
  (CHAOS_SKEWED_CLOCK names the built library) with CHAOS_CLOCK_SKEW_MS in its environment.
"""
import os
import signal
import threading

import harness

SKEW_ENV = "CHAOS_CLOCK_SKEW_MS"
SHIM = os.environ.get("CHAOS_SKEWED_CLOCK", "")


def _idle_lock_timeout():
    return 90.0  # longer than any request timeout used by the workload


class ChaosNode(harness.Node):
    def __init__(self, cluster, ip, db_name=None, skew_ms=0):
        self.skew_ms = int(skew_ms)
        self.last_config = None
        env = {}
        if self.skew_ms:
            if not SHIM or not os.path.exists(SHIM):
                raise harness.TestFailure(f"a skewed node needs the skewed clock library (CHAOS_SKEWED_CLOCK={SHIM!r})")
            env = {"LD_PRELOAD": (os.environ.get("LD_PRELOAD", "") + " " + SHIM).strip(), SKEW_ENV: str(self.skew_ms)}
        super().__init__(cluster, ip, db_name, env)
        self._lock = threading.RLock()  # no other thread knows this node yet

    def _locked(self):
        lock = self._lock
        if not lock.acquire(timeout=_idle_lock_timeout()):
            raise harness.TestFailure(f"node {self.ip}: request lock not released within {_idle_lock_timeout()}s")
        return lock

    def spawn(self):
        lock = self._locked()
        try:
            super().spawn()
        finally:
            lock.release()

    def kill(self):
        proc = self.proc
        if proc is not None and proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if proc is not None:
            # Reap it here: a writer thread's alive() (poll, outside the lock) could otherwise
            # reap it between the harness's own alive() check and its os.kill().
            try:
                proc.wait(timeout=10)
            except Exception:
                pass
        lock = self._locked()
        try:
            super().kill()
        finally:
            lock.release()

    def stop(self, timeout=15):
        lock = self._locked()
        try:
            super().stop(timeout)
        finally:
            lock.release()

    def restart(self, config=None):
        lock = self._locked()
        try:
            return super().restart(config)
        finally:
            lock.release()

    def exit_code(self):
        return None if self.proc is None else self.proc.poll()
