"""Gathering across processes: two CPU (gloo) ranks, each holding half of the batch, must together
reproduce the single-process loss on the global batch, and (after DDP's gradient averaging) its
gradients. Run on embeddings through ``compute_loss_from_embeddings``, so no model is needed."""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
import sys
import traceback

import numpy as np
import pytest
import torch
import torch.distributed as dist

from shopsearch.training.losses import InfoNCELoss, MaskedInfoNCELoss, RoarLoss

WORLD = 2
B, D, G = 3, 8, 4
# the same grade pattern on both ranks, so the per-rank means average to the global mean
GRADES = torch.tensor([[3, 2, 0, -1], [3, 3, 1, 0], [2, -1, -1, -1]]).repeat(WORLD, 1)


def _batch():
    gen = torch.Generator().manual_seed(0)
    pairs = [torch.randn(WORLD * B, D, generator=gen, dtype=torch.float64) for _ in range(3)]
    graded = [torch.randn(WORLD * B, D, generator=gen, dtype=torch.float64) for _ in range(1 + G)]
    return pairs, graded


def _losses():
    return {
        "infonce": (InfoNCELoss(None, tau=0.05, gather_across_devices=True), "pairs"),
        "masked": (MaskedInfoNCELoss(None, tau=0.05, delta=0.1, gather_across_devices=True), "pairs"),
        "roar": (RoarLoss(None, tau=0.05, tau_a=0.05, gather_across_devices=True), "graded"),
    }


def _run(loss_fn, columns, rows, labels):
    leaves = [c[rows].detach().clone().requires_grad_(True) for c in columns]
    loss = loss_fn.compute_loss_from_embeddings(leaves, None if labels is None else labels[rows])
    loss.backward()
    # numpy, not tensors: torch's queue pickler would pass tensors as shared memory that dies
    # with the worker process
    return loss.detach().numpy(), [leaf.grad.numpy() for leaf in leaves]


def _worker(rank: int, port: int, queue) -> None:
    try:
        torch.set_num_threads(1)
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=WORLD)
        pairs, graded = _batch()
        rows = slice(rank * B, (rank + 1) * B)
        out = {}
        for name, (loss_fn, kind) in _losses().items():
            columns, labels = (pairs, None) if kind == "pairs" else (graded, GRADES)
            out[name] = _run(loss_fn, columns, rows, labels)
        queue.put((rank, out))
        dist.barrier()
        dist.destroy_process_group()
    except Exception:
        queue.put((rank, traceback.format_exc()))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(
    not dist.is_available() or sys.platform != "linux", reason="needs torch.distributed and fork"
)
def test_gathered_losses_match_the_global_batch():
    ctx = mp.get_context("fork")  # inherits the imported modules: no re-import in the workers
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(rank, port, queue)) for rank in range(WORLD)]
    for p in procs:
        p.start()
    try:
        results = dict(queue.get(timeout=120) for _ in range(WORLD))
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    for rank, out in results.items():
        assert isinstance(out, dict), f"rank {rank} failed:\n{out}"

    pairs, graded = _batch()
    for name, (loss_fn, kind) in _losses().items():
        loss_fn.gather_across_devices = False
        columns, labels = (pairs, None) if kind == "pairs" else (graded, GRADES)
        full_loss, full_grads = _run(loss_fn, columns, slice(None), labels)
        rank_losses = np.stack([results[r][name][0] for r in range(WORLD)])
        np.testing.assert_allclose(rank_losses.mean(), full_loss, rtol=1e-10, err_msg=name)
        for col, full_grad in enumerate(full_grads):
            # DDP averages the ranks' gradients; each rank's embedding gradient already sums the
            # contributions of every rank's loss through all_gather's backward.
            got = np.concatenate([results[r][name][1][col] for r in range(WORLD)]) / WORLD
            np.testing.assert_allclose(got, full_grad, rtol=1e-8, atol=1e-12, err_msg=f"{name} column {col}")
