"""The benchmarks' measuring instruments: step timers, the engine-hook clock, peak memory.

Kept apart from what is measured so that every benchmark reads time and memory the same way:

- ``Timer``: seconds of one call, ``time.perf_counter`` on CPU, CUDA events on CUDA.
- ``HookClock``: seconds spent inside the engine's two optimizer hooks, per step.
- ``PeakMemory``: peak memory above the level at entry. On CPU it is the resident set
  (``VmHWM`` of ``/proc/self/status`` after resetting it through ``/proc/self/clear_refs``, and
  RSS sampled from ``/proc/self/statm`` every millisecond in a thread; the larger is kept) minus
  the RSS before the call; on CUDA it is ``torch.cuda.max_memory_allocated`` minus the
  allocation before the call.
- ``environment`` and ``device_kind``: the machine a result was measured on, for its JSON and its
  file name.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import platform
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import torch


# ----------------------------------------------------------------------------- timing
class Timer:
    """Seconds of one call: ``perf_counter`` on CPU, CUDA events (after a sync) on CUDA."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def __call__(self, fn: Callable[[], Any]) -> float:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end) / 1000.0
        start_s = time.perf_counter()
        fn()
        return time.perf_counter() - start_s


class HookClock:
    """Time spent inside the engine's two optimizer hooks, per step.

    Stamps are optimizer hooks registered before the engine's (``__init__``) and after them
    (``close``); hooks run in registration order, so each pair brackets the engine's work."""

    def __init__(self, optimizer: torch.optim.Optimizer, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.stamps: list[list[Any]] = []
        optimizer.register_step_pre_hook(lambda *_: self.stamps.append([self._now()]))
        optimizer.register_step_post_hook(lambda *_: self.stamps[-1].append(self._now()))

    def close(self, optimizer: torch.optim.Optimizer) -> None:
        optimizer.register_step_pre_hook(lambda *_: self.stamps[-1].append(self._now()))
        optimizer.register_step_post_hook(lambda *_: self.stamps[-1].append(self._now()))

    def _now(self) -> Any:
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def seconds(self, skip: int) -> list[float]:
        """Seconds inside the engine's hooks for each step after the first ``skip``.

        Each step's stamps: before the engine's pre-step hook, after it, before its post-step
        hook, after it."""
        if self.cuda:
            torch.cuda.synchronize()
            return [
                (pre.elapsed_time(pre_end) + post.elapsed_time(post_end)) / 1000.0
                for pre, pre_end, post, post_end in self.stamps[skip:]
            ]
        return [(pre_end - pre) + (post_end - post) for pre, pre_end, post, post_end in self.stamps[skip:]]


# ----------------------------------------------------------------------------- peak memory
class PeakMemory:
    """Peak memory above the level at entry, during a ``with`` block."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.extra_bytes = 0
        self.method = ""

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    @staticmethod
    def _hwm() -> int | None:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return None

    @staticmethod
    def _reset_hwm() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as clear:
                clear.write("5")
            return True
        except OSError:
            return False

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
            self.method = "torch.cuda.max_memory_allocated minus the allocation before the call"
            return self
        _release_free_memory()
        self.base = self.rss()
        self.hwm_reset = self._reset_hwm()
        self.sampled = self.base
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.stop.is_set():
            self.sampled = max(self.sampled, self.rss())
            time.sleep(0.001)

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.extra_bytes = torch.cuda.max_memory_allocated(self.device) - self.base
            return
        self.stop.set()
        self.thread.join()
        peak = max(self.sampled, self.rss())
        hwm = self._hwm() if self.hwm_reset else None
        if hwm is not None:
            peak = max(peak, hwm)
        self.extra_bytes = peak - self.base
        self.method = (
            "resident set: max of VmHWM (reset through /proc/self/clear_refs) and RSS sampled every "
            "1 ms, minus RSS before the call (free heap returned to the OS first; glibc mmap "
            "threshold pinned at 64 KiB so freed temporaries leave the resident set)"
            if hwm is not None
            else "resident set sampled every 1 ms from /proc/self/statm, minus RSS before the call"
        )


#: glibc's mallopt() parameter for the size from which blocks are mmapped (freed straight back).
_M_MMAP_THRESHOLD = -3


def _release_free_memory() -> None:
    """Return free heap pages to the OS, so that the RSS baseline holds no reusable slack.

    Also pin glibc's mmap threshold at 64 KiB. By default glibc raises it after every large
    free, so later temporaries land on the heap and stay resident after they are freed: the
    resident set then counts what earlier benchmarks in the same process left behind (measured:
    ResNet-50's prune() at 1.8x its largest tensor alone, 3.4x after the VGG-16 runs). With the
    threshold pinned, the resident set follows the live allocations.
    """
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 64 * 1024)
        libc.malloc_trim(0)


# ----------------------------------------------------------------------------- the machine
def device_kind(device: torch.device) -> str:
    """``cpu`` or e.g. ``cuda-nvidia-h200``: the file-name tag of a result."""
    if device.type != "cuda":
        return device.type
    name = torch.cuda.get_device_name(device).lower()
    return "cuda-" + re.sub(r"[^a-z0-9]+", "-", name).strip("-")


def environment(device: torch.device) -> dict[str, Any]:
    """What a result was measured on: device, versions, cores, threads, load at the start."""
    info: dict[str, Any] = {
        "device": str(device),
        "kind": device_kind(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
    }
    with contextlib.suppress(OSError):
        info["load_average_at_start"] = list(os.getloadavg())
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
