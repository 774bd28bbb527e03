"""Data-parallel zeroth-order training: run it on one process, or on several with torchrun.

    python examples/distributed_training.py
    torchrun --nproc-per-node 2 examples/distributed_training.py

Every process builds the same model and sees the same global batches; each evaluates the loss on
its own shard, the optimizer averages the two losses over the processes (one all-reduce of four
numbers), and every process applies the same update. Only rank 0 prints and saves. With
``--out PATH`` rank 0 saves the final weights there.
"""

import argparse

import torch
import torch.nn.functional as F

from adamezo import AdaMeZO, distributed


def train(steps: int, out: str | None) -> None:
    torch.manual_seed(0)
    x = torch.randn(512, 20)
    y = x @ torch.randn(20, 1) + 0.1 * torch.randn(512, 1)
    model = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.Tanh(), torch.nn.Linear(64, 1))
    distributed.broadcast_parameters(model)  # all processes start from rank 0's weights
    opt = AdaMeZO(model.parameters(), lr=1e-2, seed=0)  # the same seed on every process

    for step in range(1, steps + 1):
        rows = torch.arange(step * 64, (step + 1) * 64) % len(x)  # the global batch of this step
        (xs, ys), n = distributed.shard_batch((x[rows], y[rows]))
        loss = opt.step(lambda xs=xs, ys=ys: F.mse_loss(model(xs), ys), weight=n)
        if (step % 100 == 0 or step == steps) and distributed.is_main_process():
            print(f"step {step}  loss {loss.item():.4f}  processes {distributed.world_size()}")

    if out and distributed.is_main_process():
        torch.save(model.state_dict(), out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", help="where rank 0 saves the final weights")
    args = parser.parse_args()
    # A no-op unless launched by torchrun (or accelerate launch). The group ends with the block,
    # after train() has let go of the optimizer that holds it, so its threads end before Python.
    with distributed.process_group_from_env():
        train(args.steps, args.out)
