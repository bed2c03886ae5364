"""PyTorch side of `cargo xtask bench train`: the same MLP, data, batches and optimiser.

Reads the data autodl wrote (little-endian f32 features, f32 class indices), trains
64 -> 256 -> 256 -> 10 (ReLU) with AdamW for the given epochs on the given threads, and
prints one JSON line: seconds, samples per second, peak resident memory, final loss.
Timing starts after the first (warm-up) batch and covers the rest of the epochs, as on
the Rust side.
"""

import argparse
import json
import resource
import time

import numpy as np
import torch


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--x", required=True)
    p.add_argument("--y", required=True)
    p.add_argument("--features", type=int, required=True)
    p.add_argument("--classes", type=int, required=True)
    p.add_argument("--hidden", type=int, nargs="+", required=True)
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--lr", type=float, required=True)
    p.add_argument("--weight-decay", type=float, required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    x = torch.from_numpy(np.fromfile(a.x, dtype="<f4").reshape(-1, a.features))
    y = torch.from_numpy(np.fromfile(a.y, dtype="<f4").astype(np.int64))
    n = x.shape[0]

    layers = []
    width = a.features
    for h in a.hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
        width = h
    layers.append(torch.nn.Linear(width, a.classes))
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=a.weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(a.seed)

    def step(xb, yb):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        return loss

    # Warm-up batch, untimed (allocator and kernel selection).
    step(x[: a.batch], y[: a.batch])
    start = time.perf_counter()
    samples = 0
    loss = None
    for _ in range(a.epochs):
        order = torch.randperm(n, generator=g)
        for i in range(0, n, a.batch):
            idx = order[i : i + a.batch]
            if idx.numel() < 2:
                continue
            loss = step(x[idx], y[idx])
            samples += idx.numel()
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "seconds": seconds,
                "samples_per_sec": samples / seconds,
                "peak_rss_mib": peak_kib / 1024.0,
                "final_loss": float(loss),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
