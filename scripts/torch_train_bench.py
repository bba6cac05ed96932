"""The PyTorch side of scripts/bench-vs-torch.sh: one epoch of the Python
client's model (the paper's, as `python -m reproml.run` trains it), batch
64, on generated images, then the evaluation of 64 test images: what the
engine's throughput benchmark (`cargo bench -p reproml-runner --bench train`)
times. Prints `images/s seconds` for MODEL on THREADS threads.

    python scripts/torch_train_bench.py lenet5 1
"""

import sys
import time

import torch
import torch.nn.functional as F

from reproml.models import StreamDropout, build
from reproml.streams import Stream

SHAPES = {"lenet5": ((1, 28, 28), 4096), "vgg-x": ((3, 32, 32), 512)}


def main(model_name: str, threads: int) -> None:
    torch.set_num_threads(threads)
    (shape, n), batch = SHAPES[model_name], 64
    generator = torch.Generator().manual_seed(1)
    images = torch.randn((n + 64, *shape), generator=generator)
    labels = torch.randint(0, 10, (n + 64,), generator=generator)
    model = build(model_name, shape, 10)
    model.initialise(7)
    has_dropout = any(isinstance(m, StreamDropout) for m in model.modules())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5, dampening=0.0)
    started = time.perf_counter()
    model.train()
    for step, start in enumerate(range(0, n, batch)):
        # Dropout masks from the run's streams, as the runner draws them.
        masks = Stream(7, "dropout", 0, step) if has_dropout else None
        optimizer.zero_grad()
        loss = F.nll_loss(model(images[start:start + batch], masks), labels[start:start + batch])
        loss.backward()
        optimizer.step()
        loss.item()
    model.eval()
    with torch.no_grad():
        model(images[n:]).argmax(1)
    seconds = time.perf_counter() - started
    print(f"{n / seconds:.1f} {seconds:.2f}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
