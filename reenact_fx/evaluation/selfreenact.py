"""Self-reenactment of held-out frames: how close a generator comes to frames it has not seen.

For every held-out frame of an image dataset (``learning.image_data``: the last part of each clip)
the generator gets the clip's first training frame as the target crop and the held-out frame's own
landmarks (moved into that crop) as the driving ones; its output, pasted through its mask onto the
reference, is compared with the real frame: SSIM over the face box (as the eval harness measures)
and mean absolute error inside the face oval, in code values.
"""

from __future__ import annotations

import numpy as np

from ..components import GenerateInput, Generator
from ..learning import facecrops
from ..learning.image_data import ImageDataset, ImagePairs


def heldout(generator: Generator, ds: ImageDataset, n: int = 32) -> dict[str, float]:
    from skimage.metrics import structural_similarity

    pairs = ImagePairs(ds, "val", np.random.default_rng(0))
    b = pairs.fixed(n)
    ssims, errs = [], []
    for i in range(len(b.ref)):
        out = generator.generate(GenerateInput(image=b.ref[i], src=b.ref_points[i],
                                               dst=b.points[i]))
        m = out.mask[..., None]
        img = np.clip(out.image * m + b.ref[i] * (1 - m) + 0.5, 0, 255).astype(np.uint8)
        p = b.points[i]
        lo = np.clip(np.floor(p[:, :2].min(0)).astype(int), 0, ds.size)
        hi = np.clip(np.ceil(p[:, :2].max(0)).astype(int), 0, ds.size)
        a, t = img[lo[1]:hi[1], lo[0]:hi[0]], b.truth[i][lo[1]:hi[1], lo[0]:hi[0]]
        ssims.append(structural_similarity(a, t, channel_axis=-1, data_range=255))
        oval = facecrops.face_mask(p, ds.size) > 0.5
        errs.append(np.abs(img.astype(float) - b.truth[i])[oval].mean())
    return {"ssim": float(np.mean(ssims)), "mae": float(np.mean(errs)), "frames": len(b.ref)}
