"""Run a test function in several processes joined by a gloo process group on CPU.

Processes are forked (no second torch import, about a second to start) and rendezvous through a
file, so parallel test runs never compete for a port. Every collective times out after
``collective_timeout`` seconds and the whole run after ``timeout``, so a deadlock fails the test
instead of hanging it.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist


def _entry(
    rank: int,
    world_size: int,
    folder: str,
    collective_timeout: float,
    worker: Callable[..., Any],
    args: tuple[Any, ...],
    port: int | None,
) -> None:
    out = Path(folder)
    try:
        torch.set_num_threads(1)  # two processes share two cores
        if port is None:
            dist.init_process_group(
                "gloo",
                init_method=f"file://{out / 'rendezvous'}",
                rank=rank,
                world_size=world_size,
                timeout=timedelta(seconds=collective_timeout),
            )
        else:  # as torchrun leaves it to the worker
            launcher = {"RANK": rank, "LOCAL_RANK": rank, "WORLD_SIZE": world_size}
            launcher |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
            os.environ.update({name: str(value) for name, value in launcher.items()})
        result = worker(rank, world_size, *args)
        torch.save(result, out / f"result-{rank}.pt")
        if dist.is_initialized():
            dist.destroy_process_group()
    except BaseException:
        (out / f"error-{rank}.txt").write_text(traceback.format_exc())
        os._exit(1)


def run_group(
    worker: Callable[..., Any],
    *args: Any,
    world_size: int = 2,
    timeout: float = 120.0,
    collective_timeout: float = 60.0,
    launcher_env: bool = False,
) -> list[Any]:
    """``worker(rank, world_size, *args)`` in ``world_size`` processes; each one's return value
    (saved with ``torch.save``), in rank order. Raises with the workers' tracebacks on failure.
    ``launcher_env``: no group is started for the worker, which finds torchrun's variables (RANK,
    WORLD_SIZE, MASTER_ADDR, MASTER_PORT: a free port) to start its own."""
    context = multiprocessing.get_context("fork")
    port = _free_port() if launcher_env else None
    with tempfile.TemporaryDirectory(prefix="adamezo-dist-") as folder:
        processes = [
            context.Process(
                target=_entry,
                args=(rank, world_size, folder, collective_timeout, worker, args, port),
                daemon=True,
            )
            for rank in range(world_size)
        ]
        for process in processes:
            process.start()
        deadline = time.monotonic() + timeout
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
        stuck = [p for p in processes if p.is_alive()]
        for process in stuck:
            process.kill()
            process.join()
        errors = sorted(Path(folder).glob("error-*.txt"))
        if stuck or errors or any(p.exitcode for p in processes):
            details = "\n".join(f"{e.name}:\n{e.read_text()}" for e in errors)
            raise RuntimeError(
                f"{len(stuck)} of {world_size} processes still running after {timeout:g} s; "
                f"exit codes {[p.exitcode for p in processes]}\n{details}"
            )
        return [
            torch.load(Path(folder) / f"result-{rank}.pt", weights_only=False)
            for rank in range(world_size)
        ]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
