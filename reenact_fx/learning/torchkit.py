"""Training and export helpers for the learned components (imports torch: the ``train`` extra).

Only training modules (``plugins/*/train.py``) and ``reenact-fx train``/``export`` import this;
rendering never does.  :class:`Trainer` runs a seeded loop with checkpoints (state dicts, step,
optimisers, loss history, RNG state; read back with ``weights_only=True``), resume and a loss-curve
PNG; :func:`export_onnx` writes an ONNX file with the legacy exporter and checks it against torch.
"""

from __future__ import annotations

import os
import random
import time
import zipfile
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import ReenactError

try:
    import torch
except ImportError:  # pragma: no cover - the CLI checks before importing a training module
    raise ReenactError("training and export need torch: pip install \".[train]\"") from None

CHECKPOINT = "checkpoint.pt"     # the last step (resume continues from it)
BEST = "best.pt"                 # the best on held-out identities, when the method validates
FORMAT = 1


def tensor(a) -> torch.Tensor:
    """A float32 torch tensor of a numpy array (no copy when it already is contiguous float32)."""
    return torch.from_numpy(np.ascontiguousarray(a, np.float32))


def seed_all(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; deterministic kernels; returns a torch generator for
    sampling batches."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    # these networks are small: one thread is as fast as two on an idle machine and several times
    # faster on a busy one (worker threads spin-wait for each tiny kernel)
    torch.set_num_threads(int(os.environ.get("REENACT_FX_TRAIN_THREADS", "1")))
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def load_checkpoint(path: str, *, method: str | None = None) -> dict:
    """A checkpoint written by :class:`Trainer` (``weights_only=True``: tensors and plain data only);
    a missing, corrupt or other method's file raises ReenactError naming it."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ReenactError("checkpoint not found", path=path, key="checkpoint")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ReenactError(f"not a readable checkpoint ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0][:200] if str(exc) else ''})", path=path,
                           key="checkpoint") from None
    except Exception as exc:  # weights_only refuses pickled code with UnpicklingError
        raise ReenactError(f"not a plain-data checkpoint ({type(exc).__name__})", path=path,
                           key="checkpoint") from None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT or "modules" not in ck:
        raise ReenactError("not a reenact-fx training checkpoint", path=path, key="checkpoint")
    if method is not None and ck.get("method") != method:
        raise ReenactError(f"this checkpoint is of '{ck.get('method')}', not '{method}'", path=path,
                           key="checkpoint")
    return ck


class Trainer:
    """A seeded training loop with checkpoints, resume and loss curves.

    ``step_fn(step)`` does one optimisation step and returns its losses as floats; the trainer
    records them, reports progress, checkpoints every ``every`` steps and at the end, and plots
    ``losses.png`` beside the checkpoint.  With ``validate`` (held-out losses, the first one
    deciding), it also keeps ``best.pt``, the weights of the best validation, and ``run`` returns
    that path (the one to export).
    """

    def __init__(self, method: str, out: str, *, modules: Mapping[str, torch.nn.Module],
                 optimizers: Mapping[str, torch.optim.Optimizer], steps: int, seed: int,
                 config: Mapping[str, Any] | None = None, every: int = 500,
                 progress: Callable[[str, int, int], None] | None = None,
                 validate: Callable[[], Mapping[str, float]] | None = None,
                 validate_every: int = 100):
        self.method, self.out = method, os.fspath(out)
        self.modules, self.optimizers = dict(modules), dict(optimizers)
        self.steps, self.seed, self.every = int(steps), int(seed), max(1, int(every))
        self.config = dict(config or {})
        self.progress = progress
        self.validate, self.validate_every = validate, max(1, int(validate_every))
        self.best = float("inf")
        self.step = 0
        self.history: dict[str, list[float]] = {}
        self.generator = seed_all(seed)   # the folder is made by the first save: a failed
        #                                     resume or a refused run leaves nothing behind

    @property
    def path(self) -> str:
        return os.path.join(self.out, CHECKPOINT)

    @property
    def best_path(self) -> str:
        return os.path.join(self.out, BEST)

    def resume(self, *, required: bool = False, match: Sequence[str] = ()) -> bool:
        """Continue from ``out/checkpoint.pt`` when it exists (False when there is none; an error
        when ``required``).  ``match``: config keys that must equal the checkpoint's (they shape the
        networks, e.g. the number of identities a dataset has)."""
        if not os.path.isfile(self.path):
            if required:
                raise ReenactError("--resume: no checkpoint to continue from here", path=self.path)
            return False
        ck = load_checkpoint(self.path, method=self.method)
        for key in match:
            if key in ck["config"] and ck["config"][key] != self.config.get(key):
                raise ReenactError(f"the checkpoint was trained on another dataset ({key} "
                                   f"{ck['config'][key]}, this one {self.config.get(key)})",
                                   path=self.path)
        for name, m in self.modules.items():
            m.load_state_dict(ck["modules"][name])
        for name, o in self.optimizers.items():
            o.load_state_dict(ck["optimizers"][name])
        self.step = int(ck["step"])
        self.best = float(ck.get("best", float("inf")))
        self.history = {k: list(v) for k, v in ck["history"].items()}
        torch.set_rng_state(ck["rng"]["torch"])
        self.generator.set_state(ck["rng"]["sampler"])
        return True

    def save(self, path: str | None = None) -> str:
        path = path or self.path
        ck = {"format": FORMAT, "method": self.method, "step": self.step, "config": self.config,
              "best": self.best,
              "modules": {k: m.state_dict() for k, m in self.modules.items()},
              "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
              "history": self.history,
              "rng": {"torch": torch.get_rng_state(), "sampler": self.generator.get_state()}}
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = path + ".tmp"
        torch.save(ck, tmp)
        os.replace(tmp, path)
        return path

    def _validate(self) -> None:
        """Held-out losses (``val_*``, at the steps in ``val_step``), without gradients."""
        for m in self.modules.values():
            m.eval()
        with torch.no_grad():
            losses = self.validate()
        for m in self.modules.values():
            m.train()
        for k, v in losses.items():
            self.history.setdefault(f"val_{k}", []).append(float(v))
        self.history.setdefault("val_step", []).append(float(self.step))
        # keep the weights that did best on the held-out identities (the first loss decides):
        # adversarial training drifts, and small datasets overfit
        score = float(next(iter(losses.values())))
        if score < self.best:
            self.best = score
            self.save(self.best_path)

    def run(self, step_fn: Callable[[int], Mapping[str, float]]) -> str:
        for m in self.modules.values():
            m.train()
        t0 = time.perf_counter()
        while self.step < self.steps:
            losses = step_fn(self.step)
            for k, v in losses.items():
                v = float(v)
                if not np.isfinite(v):
                    raise ReenactError(f"training diverged: loss '{k}' is {v} at step {self.step}; "
                                       "try a lower learning rate or another seed", path=self.out)
                self.history.setdefault(k, []).append(v)
            self.step += 1
            if self.validate and (self.step % self.validate_every == 0 or self.step == self.steps):
                self._validate()
            if self.progress:
                self.progress("train", self.step, self.steps)
            if self.step % self.every == 0 and self.step < self.steps:
                self.save()
        self.config["seconds"] = self.config.get("seconds", 0.0) + time.perf_counter() - t0
        path = self.save()
        if self.history:
            plot_losses(self.history, os.path.join(self.out, "losses.png"), title=self.method)
        return self.best_path if os.path.isfile(self.best_path) and self.validate else path


def plot_losses(history: Mapping[str, Sequence[float]], path: str, title: str = "") -> str:
    """One panel per loss: raw values and a moving average, log scale where all are positive."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [k for k in history if k != "val_step"]
    val_x = np.asarray(history.get("val_step", []), float)
    cols = min(3, len(names))
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        v = np.asarray(history[name], float)
        if name.startswith("val_") and len(val_x) == len(v):
            ax.plot(val_x, v, "o-", ms=3, lw=1.2, color="C3")
            ax.set_title(name + " (held-out identities)", fontsize=9)
            if len(v) and (v > 0).all():
                ax.set_yscale("log")
            continue
        ax.plot(v, lw=0.6, alpha=0.4)
        w = max(1, len(v) // 50)
        if len(v) >= w:
            ax.plot(np.arange(w - 1, len(v)), np.convolve(v, np.ones(w) / w, "valid"), lw=1.5)
        if len(v) and (v > 0).all():
            ax.set_yscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _half_weights(model) -> None:
    """Store large float32 initializers as float16 behind a Cast (half the file, float32 compute)."""
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    casts, keep = [], []
    for init in graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype == np.float32 and arr.size >= 1024:
            half = numpy_helper.from_array(arr.astype(np.float16), init.name + "_fp16")
            keep.append(half)
            casts.append(onnx.helper.make_node("Cast", [half.name], [init.name],
                                               to=onnx.TensorProto.FLOAT))
        else:
            keep.append(init)
    del graph.initializer[:]
    graph.initializer.extend(keep)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)


def export_onnx(module: torch.nn.Module, example_inputs: Sequence[torch.Tensor], path: str,
                input_names: Sequence[str], output_names: Sequence[str], *, opset: int = 17,
                half_weights: bool = False, atol: float = 1e-4,
                dynamic_axes: Mapping[str, Mapping[int, str]] | None = None) -> str:
    """Export ``module`` to ONNX (legacy exporter, batch axis dynamic), then check that onnxruntime
    and torch agree on the example and on a batch of another size; written atomically."""
    import onnx
    import onnxruntime as ort

    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    module = module.eval()
    example_inputs = tuple(example_inputs)
    axes = dict(dynamic_axes) if dynamic_axes is not None else \
        {n: {0: "batch"} for n in list(input_names) + list(output_names)}
    tmp = path + ".tmp.onnx"
    with torch.no_grad():
        torch.onnx.export(module, example_inputs, tmp, input_names=list(input_names),
                          output_names=list(output_names), dynamic_axes=axes,
                          opset_version=opset, dynamo=False, do_constant_folding=True)
    model = onnx.load(tmp)
    if half_weights:
        _half_weights(model)
        atol = max(atol, 2e-3)
    onnx.checker.check_model(model)
    onnx.save(model, tmp)
    sess = ort.InferenceSession(tmp, providers=["CPUExecutionProvider"])
    batched = tuple(torch.cat([x, x.flip(0) * 0.9], 0) if x.is_floating_point() and x.dim()
                    else torch.cat([x, x.flip(0)], 0) for x in example_inputs)
    for inputs in (example_inputs, batched):
        with torch.no_grad():
            want = module(*inputs)
        want = [want] if isinstance(want, torch.Tensor) else list(want)
        got = sess.run(list(output_names), {n: x.numpy() for n, x in zip(input_names, inputs)})
        for name, w, g in zip(output_names, want, got):
            err = float(np.abs(w.numpy() - g).max()) if w.numel() else 0.0
            scale = float(np.abs(w.numpy()).max()) if w.numel() else 0.0
            if err > atol * max(1.0, scale):
                os.remove(tmp)
                raise ReenactError(f"ONNX output '{name}' differs from torch by {err:.2e}",
                                   path=path)
    os.replace(tmp, path)
    return path
