#!/usr/bin/env python3
"""Regenerate crates/train/tests/fixtures/optim_pytorch.json.

The fixture records what PyTorch's optimizers, clip_grad_norm_ and learning
rate schedulers do on small inputs, so tests/optim_vs_pytorch.rs can check
recurrent-train against them step by step. CI has no PyTorch: the JSON is
committed and this script is only for regenerating it (needs torch >= 2.0):

    python3 scripts/make_optim_fixtures.py

Every optimizer case starts from the same 7 parameters and applies the same
5 gradients (drawn from a seeded torch generator and saved in the fixture)
at a learning rate that changes every step. Options not listed in a case are
left at PyTorch's defaults, so the test also checks that OptimizerConfig::new
uses the same defaults. Floats are written as the shortest decimal that reads
back as the same float32.
"""

import json
import math
import re
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parent.parent / "crates/train/tests/fixtures/optim_pytorch.json"

NUM_PARAMS = 7
NUM_STEPS = 5
LRS = [0.1, 0.05, 0.02, 0.08, 0.01]

# (name, kind, options); kinds and option names as in recurrent-train's OptimizerConfig.
CASES = [
    ("sgd", "sgd", {}),
    ("sgd_momentum", "sgd", {"momentum": 0.9}),
    ("sgd_nesterov", "sgd", {"momentum": 0.9, "nesterov": True}),
    ("sgd_weight_decay", "sgd", {"weight_decay": 0.1}),
    ("sgd_momentum_weight_decay", "sgd", {"momentum": 0.5, "weight_decay": 0.05}),
    ("adam", "adam", {}),
    ("adam_weight_decay", "adam", {"weight_decay": 0.1}),
    ("adam_betas_eps", "adam", {"beta1": 0.8, "beta2": 0.99, "eps": 1e-3}),
    ("adamw", "adamw", {}),
    ("adamw_weight_decay", "adamw", {"weight_decay": 0.3, "beta1": 0.85}),
    ("rmsprop", "rmsprop", {}),
    ("rmsprop_momentum", "rmsprop", {"momentum": 0.9}),
    ("rmsprop_alpha_weight_decay", "rmsprop", {"alpha": 0.9, "weight_decay": 0.1, "momentum": 0.3}),
]


def f32(x):
    """Shortest decimal for a float32 value, checked to survive f64 parsing."""
    s = repr(np.float32(x))
    if s.startswith("np.float32("):
        s = s[len("np.float32(") : -1]
    v = float(s)
    assert np.float32(v) == np.float32(x), (x, s)
    return v


def f32s(t):
    return [f32(x) for x in t.detach().reshape(-1).tolist()]


def make_optimizer(kind, opts, params, lr):
    # foreach=False pins the single-tensor code path the Rust port mirrors
    # (it is also PyTorch's default for CPU tensors).
    common = {"lr": lr, "foreach": False}
    if "weight_decay" in opts:
        common["weight_decay"] = opts["weight_decay"]
    if kind == "sgd":
        return torch.optim.SGD(
            params, momentum=opts.get("momentum", 0), nesterov=opts.get("nesterov", False), **common
        )
    if kind in ("adam", "adamw"):
        cls = torch.optim.Adam if kind == "adam" else torch.optim.AdamW
        extra = {}
        if "beta1" in opts or "beta2" in opts:
            extra["betas"] = (opts.get("beta1", 0.9), opts.get("beta2", 0.999))
        if "eps" in opts:
            extra["eps"] = opts["eps"]
        return cls(params, **extra, **common)
    if kind == "rmsprop":
        extra = {k: opts[k] for k in ("alpha", "eps", "momentum") if k in opts}
        return torch.optim.RMSprop(params, **extra, **common)
    raise ValueError(kind)


def optimizer_cases(init, grads):
    cases = []
    for name, kind, opts in CASES:
        p = torch.nn.Parameter(init.clone())
        opt = make_optimizer(kind, opts, [p], LRS[0])
        expected = []
        for lr, g in zip(LRS, grads):
            opt.param_groups[0]["lr"] = lr
            p.grad = g.clone()
            opt.step()
            expected.append(f32s(p))
        cases.append({"name": name, "kind": kind, "options": opts, "expected": expected})
    return cases


def clip_cases(gen):
    """clip_grad_norm_ over two parameter tensors; Rust sees them concatenated."""
    cases = []
    for name, scale, max_norm in [("clipped", 3.0, 1.0), ("unclipped", 0.1, 5.0)]:
        a = torch.nn.Parameter(torch.zeros(4))
        b = torch.nn.Parameter(torch.zeros(7))
        a.grad = torch.randn(4, generator=gen) * scale
        b.grad = torch.randn(7, generator=gen) * scale
        grads = f32s(torch.cat([a.grad, b.grad]))
        norm = torch.nn.utils.clip_grad_norm_([a, b], max_norm, foreach=False)
        cases.append(
            {
                "name": name,
                "max_norm": max_norm,
                "grads": grads,
                "norm": f32(norm.item()),
                "clipped": f32s(torch.cat([a.grad, b.grad])),
            }
        )
    return cases


def lrs_per_step(scheduler, opt, steps):
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return out


def schedule_cases():
    """Learning rate before each optimizer step, as PyTorch's schedulers give it."""
    base = 0.1
    dummy = [torch.nn.Parameter(torch.zeros(1))]

    def fresh():
        return torch.optim.SGD(dummy, lr=base)

    cases = []
    opt = fresh()
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    cases.append(
        {"schedule": {"kind": "step", "every": 3, "gamma": 0.5}, "lrs": lrs_per_step(sched, opt, 10)}
    )
    opt = fresh()
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10, eta_min=0.001)
    cases.append(
        {
            "schedule": {"kind": "cosine", "total_steps": 10, "min_lr": 0.001, "warmup_steps": 0},
            # PyTorch's cosine is periodic past T_max; ours stays at min_lr, so stop at T_max.
            "lrs": lrs_per_step(sched, opt, 11),
        }
    )

    losses = [2.0, 1.8, 1.8, 1.79995, 1.9, 1.7, 1.7, 1.7, 1.7, 1.6, 1.65, 1.66, 1.67, 1.68, 1.69]
    opt = fresh()
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, factor=0.5, patience=2, threshold=1e-4, min_lr=0.02
    )
    after = []
    for loss in losses:
        sched.step(loss)
        after.append(opt.param_groups[0]["lr"])
    cases.append(
        {
            "schedule": {
                "kind": "plateau",
                "factor": 0.5,
                "patience": 2,
                "threshold": 1e-4,
                "min_lr": 0.02,
            },
            "val_losses": losses,
            "lrs": after,
        }
    )
    for c in cases:
        c["base_lr"] = base
        assert all(math.isfinite(x) for x in c["lrs"])
    return cases


def main():
    gen = torch.Generator().manual_seed(20240611)
    init = torch.randn(NUM_PARAMS, generator=gen)
    grads = [torch.randn(NUM_PARAMS, generator=gen) for _ in range(NUM_STEPS)]
    fixture = {
        "generated_by": "scripts/make_optim_fixtures.py with torch " + torch.__version__,
        "init": f32s(init),
        "grads": [f32s(g) for g in grads],
        "lrs": LRS,
        "optimizers": optimizer_cases(init, grads),
        "clip": clip_cases(gen),
        "schedules": schedule_cases(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    # Number arrays on one line each keeps the file small and diffs readable.
    text = re.sub(
        r"\[[^\[\]{}\"]*\]",
        lambda m: "[" + ", ".join(x.strip() for x in m.group(0)[1:-1].split(",")) + "]",
        json.dumps(fixture, indent=1),
    )
    OUT.write_text(text + "\n")
    print(f"wrote {OUT} ({len(text)} bytes)")


if __name__ == "__main__":
    main()
