"""limits.memory where no cgroup enforces it: one sampler thread for all of a runner's limited containers."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from podline.runtime import memory_limit
from podline.runtime.memory_limit import MemoryWatch
from podline.runtime.memory_limit import memory_limit as limit_of


def _start(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code], start_new_session=True)


def test_one_sampler_kills_the_container_over_its_limit_and_spares_the_other() -> None:
    hog = _start("import time; x = b'x' * (120 << 20); time.sleep(30)")
    calm = _start("import time; time.sleep(30)")
    try:
        watches = [MemoryWatch(proc, limit, lambda p=proc: p.send_signal(signal.SIGKILL))
                   for proc, limit in ((hog, 60 << 20), (calm, 500 << 20))]
        for watch in watches:
            watch.start()
        assert hog.wait(timeout=20) == -signal.SIGKILL
        time.sleep(3 * memory_limit.CHECK_SECONDS)
        assert calm.poll() is None and [w.stop() for w in watches] == [True, False]
        time.sleep(3 * memory_limit.CHECK_SECONDS)
        assert memory_limit.SAMPLER.thread is None  # nothing left to watch: the thread is gone
    finally:
        for proc in (hog, calm):
            proc.kill()
            proc.wait()


def test_the_plans_memory_limit_in_bytes() -> None:
    assert limit_of({"memoryLimit": "64Mi"}) == 64 << 20
    assert limit_of({}) is None and limit_of({"memoryLimit": "0"}) is None
