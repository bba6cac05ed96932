"""The paper's VGG-X, LeNet-5 and the MLP in PyTorch, with the Rust models'
architecture and initialisation rules; initial weights are drawn from the
run's `weight-init` streams in the same parameter order and layout as the
Rust client (linear weights drawn as [in, out], then transposed), and
dropout masks from the batch's `dropout` stream (docs/protocol.md section 5),
never from torch's global generator."""

from __future__ import annotations

import math
from typing import List, Optional, Tuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .streams import (Stream, dropout_mask, dropout_threshold, first_words_of_each, normal_of, stream_key, u64_of,
                      unit_of)


class StreamDropout(nn.Module):
    """Inverted dropout whose mask comes from a protocol stream.

    A module (without parameters) rather than a bare plan step so that the
    layer indices, and with them the parameter names in the digest, stay as
    they were with `nn.Dropout`."""

    def __init__(self, p: float) -> None:
        super().__init__()
        dropout_threshold(p)  # refuse a bad p when the model is built, not mid-run
        self.p = p

    def forward(self, x: torch.Tensor, stream: Optional[Stream]) -> torch.Tensor:
        if not self.training:
            return x  # evaluation has no dropout and consumes no stream, as in Rust
        if stream is None:
            raise ValueError("a training forward pass through dropout needs the batch's stream: "
                             "call model(x, Stream(seed, \"dropout\", epoch, step))")
        if x.dim() != 2:
            raise ValueError(f"dropout masks are defined on [batch, features] activations, got shape {tuple(x.shape)}")
        mask = dropout_mask(stream, x.numel(), self.p).reshape(tuple(x.shape))
        # A constant float32 factor: the gradient is the upstream gradient
        # times the same mask, as in the Rust engine.
        return x * torch.from_numpy(mask).to(device=x.device, dtype=x.dtype)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Net(nn.Module):
    """A sequential network whose parameters are initialised from streams."""

    def __init__(self, layers: List[Tuple[str, object]], inits: List[Tuple[str, str, float]]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(m for _, m in layers if isinstance(m, nn.Module))
        self.plan = layers
        self.inits = inits  # (parameter name, rule, value) in the Rust order

    def forward(self, x: torch.Tensor, dropout: Optional[Stream] = None) -> torch.Tensor:
        """Log-probabilities. In training mode, `dropout` is the batch's stream
        `(run seed, "dropout", epoch, step)`, read in order by every dropout
        layer; in evaluation it is not needed."""
        for kind, module in self.plan:
            if kind == "relu":
                x = F.relu(x)
            elif kind == "pool":
                x = F.max_pool2d(x, 2)
            elif kind == "flatten":
                x = torch.flatten(x, 1)
            elif kind == "adaptive":
                x = F.adaptive_avg_pool2d(x, module)
            elif kind == "dropout":
                x = module(x, dropout)
            else:
                x = module(x)
        return F.log_softmax(x, dim=1)

    def initialise(self, seed: int) -> None:
        """Parameter i from stream (seed, "weight-init", 0, i), as the Rust client."""
        params = dict(self.named_parameters())
        plan = []
        for i, (name, rule, value) in enumerate(self.inits):
            p = params[name]
            linear_weight = p.dim() == 2
            shape = tuple(reversed(p.shape)) if linear_weight else tuple(p.shape)
            count = int(np.prod(shape))
            # Words each rule draws: 4 per normal value (two u64), 2 per
            # uniform one (one u64), none for zeros.
            words = {"normal": 4 * count, "uniform": 2 * count}.get(rule, 0)
            plan.append((p, linear_weight, shape, count, rule, value, stream_key(seed, "weight-init", 0, i), words))
        # Small models: every parameter's stream in one vectorised pass (the
        # cost of a NumPy call, not of a block, dominates them); large ones
        # parameter by parameter, to bound memory.
        total = sum(words for *_, words in plan)
        drawn = (first_words_of_each([key for *_, key, _ in plan], [w for *_, w in plan])
                 if total <= _BATCHED_INIT_WORDS else [None] * len(plan))
        with torch.no_grad():
            for (p, linear_weight, shape, count, rule, value, key, words), w in zip(plan, drawn):
                if w is None:
                    w = Stream.from_key(key).words(words)
                if rule == "normal":
                    values = normal_of(unit_of(u64_of(w))) * value
                elif rule == "uniform":
                    values = (2.0 * unit_of(u64_of(w)) - 1.0) * value
                else:
                    values = np.zeros(count)
                array = values.astype(np.float32).reshape(shape)
                p.copy_(torch.from_numpy(array.T.copy() if linear_weight else array))


#: Up to this many words (16 MB), a model's initial weights are drawn in
#: one pass.
_BATCHED_INIT_WORDS = 1 << 22


def _build(input_shape, classes, spec):
    channels, height, width = input_shape
    layers, inits = [], []
    shape = [channels, height, width]
    n = {"conv": 0, "fc": 0}
    for item in spec:
        kind = item[0]
        if kind == "conv":
            _, out, k, pad, scheme = item
            n["conv"] += 1
            conv = nn.Conv2d(shape[0], out, k, padding=pad)
            name = f"layers.{len([m for _, m in layers if isinstance(m, nn.Module)])}"
            if scheme == "paper":
                inits += [(f"{name}.weight", "normal", math.sqrt(2.0 / (out * k * k))), (f"{name}.bias", "zeros", 0.0)]
            else:
                bound = 1.0 / math.sqrt(shape[0] * k * k)
                inits += [(f"{name}.weight", "uniform", bound), (f"{name}.bias", "uniform", bound)]
            layers += [("module", conv), ("relu", None)]
            shape = [out, shape[1] + 2 * pad - k + 1, shape[2] + 2 * pad - k + 1]
        elif kind == "pool":
            layers.append(("pool", None))
            shape = [shape[0], shape[1] // 2, shape[2] // 2]
        elif kind == "adaptive":
            layers.append(("adaptive", item[1]))
            shape = [shape[0], item[1][0], item[1][1]]
        elif kind == "flatten":
            layers.append(("flatten", None))
            shape = [shape[0] * shape[1] * shape[2]]
        elif kind == "fc":
            _, out, relu, scheme = item
            fc = nn.Linear(shape[0], out)
            name = f"layers.{len([m for _, m in layers if isinstance(m, nn.Module)])}"
            if scheme == "paper":
                inits += [(f"{name}.weight", "normal", 0.01), (f"{name}.bias", "zeros", 0.0)]
            else:
                bound = 1.0 / math.sqrt(shape[0])
                inits += [(f"{name}.weight", "uniform", bound), (f"{name}.bias", "uniform", bound)]
            layers.append(("module", fc))
            if relu:
                layers.append(("relu", None))
            shape = [out]
        elif kind == "dropout":
            layers.append(("dropout", StreamDropout(item[1])))
    return Net(layers, inits)


def build(model: str, input_shape, classes: int) -> Net:
    """The model by its Rust name: mlp, lenet5 or vgg-x."""
    c, h, w = input_shape
    if model == "mlp":
        spec = [("flatten",), ("fc", 128, True, "torch"), ("fc", 64, True, "torch"), ("fc", classes, False, "torch")]
    elif model == "lenet5":
        pad2 = 2 if min(h, w) // 2 < 10 else 0
        spec = [("conv", 6, 5, 2, "torch"), ("pool",), ("conv", 16, 5, pad2, "torch"), ("pool",), ("flatten",),
                ("fc", 120, True, "torch"), ("fc", 84, True, "torch"), ("fc", classes, False, "torch")]
    elif model == "vgg-x":
        spec = [("conv", 64, 3, 1, "paper"), ("conv", 256, 3, 1, "paper"), ("pool",), ("conv", 512, 3, 1, "paper"),
                ("adaptive", (5, 5)), ("flatten",), ("fc", 1024, True, "paper"), ("dropout", 0.5),
                ("fc", 1024, True, "paper"), ("dropout", 0.5), ("fc", classes, False, "paper")]
    else:
        raise ValueError(f"unknown model {model!r}; the Python client has mlp, lenet5 and vgg-x")
    return _build(input_shape, classes, spec)
