"""Node processes for the chaos harness: tests/cluster/harness.py's Node, made safe to kill,
stop and restart from the main thread while another thread is in the middle of a request.

- The request lock is re-entrant, and spawn/stop/restart hold it, so a writer thread never
  talks to a half-started or half-stopped process (it waits, then finds it not running).
- kill() sends SIGKILL and reaps the process first, without the lock (the writer may hold
  it, waiting for a reply that will never come: it then sees end of file and lets go), and
  closes the pipes only under the lock, so a writer can never read a reply from the next
  process.
- A node may run with a skewed wall clock: HDBREPL_CLOCK_SKEW_MS (engine/hlc.cpp) is set in
  its environment at spawn.
"""
import os
import signal
import threading

import harness

SKEW_ENV = "HDBREPL_CLOCK_SKEW_MS"


def _idle_lock_timeout():
    return 90.0  # longer than any request timeout used by the workload


class ChaosNode(harness.Node):
    def __init__(self, cluster, ip, db_name=None, skew_ms=0):
        self.skew_ms = int(skew_ms)
        self.last_config = None
        super().__init__(cluster, ip, db_name)
        self._lock = threading.RLock()  # no other thread knows this node yet

    def _locked(self):
        lock = self._lock
        if not lock.acquire(timeout=_idle_lock_timeout()):
            raise harness.TestFailure(f"node {self.ip}: request lock not released within {_idle_lock_timeout()}s")
        return lock

    def spawn(self):
        lock = self._locked()
        try:
            old = os.environ.get(SKEW_ENV)
            if self.skew_ms:
                os.environ[SKEW_ENV] = str(self.skew_ms)
            else:
                os.environ.pop(SKEW_ENV, None)
            try:
                super().spawn()
            finally:
                if old is None:
                    os.environ.pop(SKEW_ENV, None)
                else:
                    os.environ[SKEW_ENV] = old
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
