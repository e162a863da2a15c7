"""Speed and held-out self-reenactment of the learned generators (freenet.gag, facegan.reenactor,
facegan.bgmix) against meshwarp.

    python bench/bench_generators.py speed                       # ms per crop, 128 and 256
    python bench/bench_generators.py heldout DATA.npz [NAME=WEIGHTS.onnx ...]

``speed`` times the network alone (onnxruntime, one thread, batch 1, median of 30 runs after 3 warm-ups; the
weights' values do not change the time, so 256 px models are exported untrained) and a whole
``generate`` / ``mix`` call at 128 (crop in, network, crop out).  ``heldout`` reenacts the held-out
frames of an image dataset (``reenact_fx.evaluation.selfreenact``) with meshwarp, the shipped
weights and any others given, and prints SSIM and the face's mean absolute error.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time

import numpy as np


def _median_ms(fn, runs: int = 30) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def speed() -> None:
    import torch

    from reenact_fx.learning.runtime import load_session
    from reenact_fx_plugins.facegan.image_model import Mixer, Reenactor
    from reenact_fx_plugins.freenet.gag_model import GAG

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    print("component           size  network ms/crop")
    with tempfile.TemporaryDirectory() as tmp:
        for size in (128, 256):
            models = {"freenet.gag": (GAG(size, 8), ["image", "landmarks"],
                                      [(1, 3, size, size), (1, 1, 64, 64)]),
                      "facegan.reenactor": (Reenactor(8), ["image", "heatmap"],
                                            [(1, 3, size, size), (1, 1, size, size)]),
                      "facegan.bgmix": (Mixer(8), ["face", "background", "mask"],
                                        [(1, 3, size, size)] * 2 + [(1, 1, size, size)])}
            for name, (m, names, shapes) in models.items():
                path = f"{tmp}/{name}-{size}.onnx"
                ex = tuple(torch.rand(s) for s in shapes)
                with torch.no_grad():
                    torch.onnx.export(m.eval(), ex, path, input_names=names, dynamo=False,
                                      opset_version=17)
                sess = load_session(path, owner=name, threads=1)
                feeds = {n: rng.uniform(0, 1, s).astype(np.float32) for n, s in zip(names, shapes)}
                ms = _median_ms(lambda: sess.run(None, feeds))
                print(f"{name:<19} {size:>4}  {ms:8.1f}")
    whole()


def whole() -> None:
    """A whole generate()/mix() at the shipped 128 px, on a real crop when the shared faces are
    there (else a synthetic face-sized landmark set)."""
    from reenact_fx.components import GenerateInput
    from reenact_fx.face.crop import SquareCrop
    from reenact_fx.learning.image_data import ImageDataset, ImagePairs
    from reenact_fx.pipeline.registry import default_registry

    reg = default_registry()
    if len(sys.argv) > 2:
        ds = ImageDataset.load(sys.argv[2])
        b = ImagePairs(ds, "val", np.random.default_rng(0)).fixed(1)
        x = GenerateInput(image=b.ref[0], src=b.ref_points[0], dst=b.points[0])
    else:
        print("(give an image dataset .npz as the second argument for the whole-call times)")
        return
    print("whole call at the dataset's crop size:")
    for name in ("meshwarp", "freenet.gag", "facegan.reenactor"):
        gen = reg.get("generator", name)({})
        print(f"  {name:<19} generate {_median_ms(lambda: gen.generate(x)):6.1f} ms")
    out = reg.get("generator", "meshwarp")({}).generate(x)
    crop = SquareCrop(0, 0, x.image.shape[0], x.image.shape[0])
    for name in ("feather", "facegan.bgmix"):
        mix = reg.get("mixer", name)({})
        print(f"  {name:<19} mix      {_median_ms(lambda: mix.mix(x.image.copy(), out, crop)):6.1f} ms")


def heldout() -> None:
    from reenact_fx.evaluation import selfreenact
    from reenact_fx.learning.image_data import ImageDataset
    from reenact_fx.pipeline.registry import default_registry

    ds = ImageDataset.load(sys.argv[2])
    reg = default_registry()
    runs = [("meshwarp", "meshwarp", {}), ("freenet.gag", "freenet.gag (shipped)", {}),
            ("facegan.reenactor", "facegan.reenactor (shipped)", {})]
    for item in sys.argv[3:]:
        name, _, path = item.partition("=")
        runs.append((name, f"{name} ({path})", {"weights": path}))
    print(f"held-out self-reenactment, {int(ds.val.sum())} held-out frames of {len(ds.clips)} clip(s)")
    print(f"{'generator':<60} {'ssim':>6} {'mae':>6}")
    for name, label, params in runs:
        r = selfreenact.heldout(reg.get("generator", name)(params), ds)
        print(f"{label:<60} {r['ssim']:6.3f} {r['mae']:6.1f}")


if __name__ == "__main__":
    {"speed": speed, "heldout": heldout}[sys.argv[1] if len(sys.argv) > 1 else "speed"]()
