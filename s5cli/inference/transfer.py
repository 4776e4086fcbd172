"""Moving predict's data between the host and the model's device without stalling either.

Up: a batch of tiles is stacked straight into page-locked (pinned) host memory and copied on a side
CUDA stream, so that the copy of batch n + 1 overlaps the model on batch n; the model's stream waits
for the copy on the device, never the host. Down: finished rows (two uint8 planes, a 16th of the
float32 class planes for 4 classes, less for more) are copied into pinned memory behind an event, and
the writer thread waits for that event, not the model thread. On a CPU both are plain hand-overs
(torch.from_numpy shares the arrays), so one code path serves every device.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch


def _torch_dtype(dtype: np.dtype) -> torch.dtype:
    return torch.from_numpy(np.empty(0, dtype=dtype)).dtype


class Uploader:
    """Host arrays -> one stacked tensor on the device (pinned memory and a copy stream on CUDA)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self.stream = torch.cuda.Stream(device) if self.cuda else None

    def __call__(self, arrays: Sequence[np.ndarray]) -> torch.Tensor:
        """Stack same-shaped arrays (B, ...) and put them on the device."""
        if not self.cuda:
            return torch.from_numpy(np.stack(arrays)).to(self.device)
        first = arrays[0]
        host = torch.empty((len(arrays), *first.shape), dtype=_torch_dtype(first.dtype), pin_memory=True)
        np.stack(arrays, out=host.numpy())
        assert self.stream is not None
        with torch.cuda.stream(self.stream):
            on_device = host.to(self.device, non_blocking=True)
        compute = torch.cuda.current_stream(self.device)
        compute.wait_stream(self.stream)
        on_device.record_stream(compute)  # its memory is used on the compute stream: not reused before that
        return on_device


class Download:
    """Device tensors on their way to the host; `result()` waits for them (call it off the model thread)."""

    def __init__(self, tensors: Sequence[torch.Tensor]) -> None:
        self.event: torch.cuda.Event | None = None
        if tensors and tensors[0].device.type == "cuda":
            self.host = [torch.empty(t.shape, dtype=t.dtype, pin_memory=True) for t in tensors]
            for dst, src in zip(self.host, tensors):
                dst.copy_(src, non_blocking=True)
            self.event = torch.cuda.Event()
            self.event.record(torch.cuda.current_stream(tensors[0].device))
        else:
            self.host = [t.cpu() for t in tensors]

    def result(self) -> list[np.ndarray]:
        """The arrays, once the copies have landed."""
        if self.event is not None:
            self.event.synchronize()
        return [t.numpy() for t in self.host]


class DeviceTimer:
    """Seconds in which the model was running.

    CUDA events on a GPU; on a CPU, the union of the intervals of concurrent calls (two calls side by
    side for 1 s count 1 s, not 2).
    """

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.device = device
        self.pairs: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self.spans: list[tuple[float, float]] = []

    def start(self) -> object:
        """Mark the start of a timed span; returns its token for stop()."""
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record(torch.cuda.current_stream(self.device))
            return event
        return time.perf_counter()

    def stop(self, token: object) -> None:
        """Mark the end of the span started with `token` (thread-safe: list.append is atomic)."""
        if self.cuda:
            end = torch.cuda.Event(enable_timing=True)
            end.record(torch.cuda.current_stream(self.device))
            self.pairs.append((token, end))  # type: ignore[arg-type]
        else:
            self.spans.append((float(token), time.perf_counter()))  # type: ignore[arg-type]

    def total(self) -> float:
        """Total timed seconds (waits for the device on a GPU)."""
        if self.pairs:
            self.pairs[-1][1].synchronize()
            return sum(a.elapsed_time(b) for a, b in self.pairs) / 1000.0
        covered, reach = 0.0, float("-inf")
        for t0, t1 in sorted(self.spans):
            if t1 > reach:
                covered += t1 - max(t0, reach)
                reach = t1
        return covered
