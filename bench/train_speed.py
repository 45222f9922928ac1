"""PyTorch side of the training-speed comparison (bench/train_speed.sh).

The same two models as compress/examples/train_speed.rs — the 2-conv CNN (1→32→64, 3×3, 28×28,
max pooling, dense classifier) and ResNet-20 (CIFAR shape, width 16, batch norm) — and the same
step: forward, cross-entropy, backward, SGD with momentum 0.9 and weight decay 5e-4, on random
seeded data. Prints one JSON line per model: the median step time after three warm-up steps.
"""

import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def small_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 10))


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.sc = None
        if stride != 1 or cin != cout:
            self.sc = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        return F.relu(y + (x if self.sc is None else self.sc(x)))


def resnet20(w=16, n=3):
    layers = [nn.Conv2d(3, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
    cin = w
    for stage, width in enumerate([w, 2 * w, 4 * w]):
        for b in range(n):
            layers.append(Block(cin, width, 2 if stage > 0 and b == 0 else 1))
            cin = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, 10)]
    return nn.Sequential(*layers)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    for name, model, shape in [("cnn", small_cnn(), (1, 28, 28)), ("resnet20", resnet20(), (3, 32, 32))]:
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        x = torch.rand(a.batch, *shape) * 2 - 1
        y = torch.arange(a.batch) * 7 % 10
        times = []
        for step in range(a.steps + 3):
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            if step >= 3:
                times.append((time.perf_counter() - t0) * 1e3)
        ms = sorted(times)[len(times) // 2]
        print(json.dumps({"model": name, "framework": "pytorch", "batch": a.batch,
                          "threads": torch.get_num_threads(), "step_ms": round(ms, 2),
                          "images_per_s": round(a.batch / ms * 1e3)}))


if __name__ == "__main__":
    main()
