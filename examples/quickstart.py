"""Train a small regression model with AdaMeZO and print its loss falling.

A placeholder for the main job until the fine-tuning pipeline lands.
"""

import torch

from adamezo import AdaMeZO, MeZO

torch.manual_seed(0)
x = torch.randn(512, 20)
y = x @ torch.randn(20, 1) + 0.1 * torch.randn(512, 1)


def train(optimizer_cls, lr):
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.Tanh(), torch.nn.Linear(64, 1))
    opt = optimizer_cls(model.parameters(), lr=lr, seed=0)
    for step in range(1, 1001):
        loss = opt.step(lambda: torch.nn.functional.mse_loss(model(x), y))
        if step % 200 == 0:
            print(f"{optimizer_cls.__name__:8s} step {step:4d}  loss {loss.item():.4f}")


train(AdaMeZO, 1e-2)
train(MeZO, 1e-3)
