"""Torch side of the learned image components (training and export only; the ``train`` extra).

Layers (conv blocks, ResBlocks, a PatchGAN discriminator that also hands out its features), the
perceptual features (a local VGG-19 file when the user has one, else the discriminator's features:
feature matching), SSIM, preview sheets, starting from shipped ONNX weights (a person-specific
fine-tune needs no torch checkpoint), and :class:`ImageRun`: the data, pairs, validation, progress
and previews every image component's ``train`` shares, around :class:`torchkit.Trainer` (same
checkpoint, resume, ``best.pt`` and export rules as the landmark components).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ReenactError
from . import facecrops, torchkit
from .image_data import ImageDataset, ImagePairs, PairBatch, cached_images

# ---------------------------------------------------------------------------------------- layers


def conv(cin: int, cout: int, stride: int = 1, k: int = 3, norm: bool = True) -> nn.Sequential:
    """k x k conv (reflect padding), instance norm, LeakyReLU(0.2)."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, padding_mode="reflect")]
    if norm:
        layers.append(nn.InstanceNorm2d(cout))
    layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


class Up(nn.Module):
    """x2 nearest upsampling then a conv block (no checkerboard of transposed convs)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = conv(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, padding_mode="reflect"),
                                  nn.InstanceNorm2d(c), nn.LeakyReLU(0.2),
                                  nn.Conv2d(c, c, 3, 1, 1, padding_mode="reflect"),
                                  nn.InstanceNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class UNet(nn.Module):
    """A small U-Net: levels at S, S/2, S/4, S/8 (widths w, 2w, 4w, 6w), ``blocks`` ResBlocks at
    the bottom, a decoder with skips, and one 3x3 head per entry of ``heads`` (name -> channels)
    on the last decoder layer's features (FACEGAN's segmentation head sits there, beside RGB).
    ``forward`` returns the heads' raw outputs in ``heads`` order."""

    def __init__(self, cin: int, heads: Mapping[str, int], width: int = 16, blocks: int = 2):
        super().__init__()
        w = width
        c = 6 * w
        self.enc0, self.enc1 = conv(cin, w), conv(w, 2 * w, 2)
        self.enc2, self.enc3 = conv(2 * w, 4 * w, 2), conv(4 * w, c, 2)
        self.mid = nn.Sequential(*[ResBlock(c) for _ in range(blocks)])
        self.dec2, self.dec1, self.dec0 = Up(c, 4 * w), Up(8 * w, 2 * w), Up(4 * w, w)
        self.last = conv(2 * w, w)
        self.heads = nn.ModuleDict({k: nn.Conv2d(w, n, 3, 1, 1, padding_mode="reflect")
                                    for k, n in heads.items()})

    def forward(self, x: torch.Tensor):
        e0 = self.enc0(x)
        e1 = self.enc1(e0)
        e2 = self.enc2(e1)
        h = self.mid(self.enc3(e2))
        h = torch.cat([self.dec2(h), e2], 1)
        h = torch.cat([self.dec1(h), e1], 1)
        h = self.last(torch.cat([self.dec0(h), e0], 1))
        return tuple(head(h) for head in self.heads.values())


class PatchGAN(nn.Module):
    """Pix2Pix's PatchGAN: stride-2 4x4 convs to a map of real/fake logits, one per patch.
    ``forward`` returns (logits, features of every layer) for feature matching."""

    def __init__(self, cin: int = 3, width: int = 32, layers: int = 3):
        super().__init__()
        blocks, c = [], cin
        for i in range(layers):
            out = width * 2 ** i
            blocks.append(nn.Sequential(nn.Conv2d(c, out, 4, 2, 1),
                                        *([nn.InstanceNorm2d(out)] if i else []),
                                        nn.LeakyReLU(0.2)))
            c = out
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(c, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor):
        feats = []
        for b in self.blocks:
            x = b(x)
            feats.append(x)
        return self.head(x), feats


def gan_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss, as CycleGAN (FReeNet's discriminator reference [43]) trains it."""
    return F.mse_loss(logits, torch.full_like(logits, 1.0 if real else 0.0))


def descend(opt: torch.optim.Optimizer, loss: torch.Tensor) -> torch.Tensor:
    """One optimiser step on ``loss``; returns it."""
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss


def discriminator_step(d: nn.Module, opt: torch.optim.Optimizer, real: torch.Tensor,
                       fake: torch.Tensor) -> torch.Tensor:
    """The discriminator's update of a GAN step: least squares on ``real`` and the detached
    ``fake``, halved (as every image method here trains it); returns its loss."""
    loss = 0.5 * (gan_loss(d(real)[0], True) + gan_loss(d(fake.detach())[0], False))
    return descend(opt, loss)


def masked_l1(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of RGB images over the pixels of ``mask`` (N, 1, H, W)."""
    return ((x - y).abs() * mask).sum() / (3 * mask.sum()).clamp_min(1)


# ----------------------------------------------------------------------------- perceptual features

VGG19_CONVS = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512)   # up to relu4_1
VGG_TAPS = (1, 6, 11, 20)             # relu1_1, relu2_1, relu3_1, relu4_1 in torchvision's indices


class VGGFeatures(nn.Module):
    """VGG-19's relu1_1..relu4_1 from a local torchvision ``vgg19`` state dict (``features.N.*``
    keys; read with ``weights_only=True``).  No weights are downloaded."""

    def __init__(self, path: str):
        super().__init__()
        layers: list[nn.Module] = []
        c = 3
        for v in VGG19_CONVS:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(c, int(v), 3, 1, 1), nn.ReLU()]
                c = int(v)
        self.features = nn.Sequential(*layers)
        path = os.path.expanduser(path)
        if not os.path.isfile(path):
            raise ReenactError("VGG-19 weights file not found", path=path, key="vgg")
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ReenactError(f"not a readable VGG-19 state dict ({type(exc).__name__})",
                               path=path, key="vgg") from None
        want = self.features.state_dict()
        got = {k[len("features."):]: v for k, v in sd.items() if k.startswith("features.")
               and k[len("features."):] in want}
        missing = sorted(set(want) - set(got))
        if missing:
            raise ReenactError(f"not a torchvision vgg19 state dict (missing features.{missing[0]})",
                               path=path, key="vgg")
        self.features.load_state_dict(got)
        self.requires_grad_(False)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = ((x + 1) / 2 - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in VGG_TAPS:
                out.append(x)
        return out


def feature_distance(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    """Per-sample mean squared distance over feature layers (each layer counts alike): (B,)."""
    return sum(((x - y) ** 2).flatten(1).mean(1) for x, y in zip(a, b)) / len(a)


def feature_matching(fake: list[torch.Tensor], real: list[torch.Tensor]) -> torch.Tensor:
    """pix2pixHD's feature-matching loss: L1 between the discriminator's features of the fake and
    of the (detached) real image, averaged over layers."""
    return sum(F.l1_loss(f, r.detach()) for f, r in zip(fake, real)) / len(fake)


def perceptual(fake: torch.Tensor, real: torch.Tensor, fake_feats: list[torch.Tensor],
               d: nn.Module, vgg: nn.Module | None) -> torch.Tensor:
    """The perceptual loss of a generator step: VGG feature distance when VGG weights were given,
    else (offline, no VGG) feature matching on the discriminator's features (``fake_feats``: the
    discriminator's features of ``fake``, from its adversarial term)."""
    if vgg is not None:
        return feature_distance(vgg(fake), vgg(real)).mean()
    return feature_matching(fake_feats, [f.detach() for f in d(real)[1]])


def triplet_perceptual(anchor, positive, negative, margin: float) -> torch.Tensor:
    """FReeNet's triplet perceptual loss [m + D(k(a), k(p)) - D(k(a), k(n))]_+ on feature lists."""
    return F.relu(margin + feature_distance(anchor, positive)
                  - feature_distance(anchor, negative)).mean()


def normalised(feats: list[torch.Tensor]) -> list[torch.Tensor]:
    """Features scaled to unit mean square per sample and layer (so a margin of 0.3 means the same
    whichever network supplies them)."""
    return [f / f.pow(2).flatten(1).mean(1).clamp_min(1e-6).sqrt().view(-1, 1, 1, 1) for f in feats]


# --------------------------------------------------------------------------------------- metrics

def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of uint8 RGB images (H, W, 3) or batches of them."""
    from skimage.metrics import structural_similarity

    a, b = np.asarray(a), np.asarray(b)
    if a.ndim == 3:
        return float(structural_similarity(a, b, channel_axis=-1, data_range=255))
    return float(np.mean([structural_similarity(x, y, channel_axis=-1, data_range=255)
                          for x, y in zip(a, b)]))


def face_box_ssim(out: np.ndarray, truth: np.ndarray, points: np.ndarray) -> float:
    """SSIM over the face box of the truth's landmarks (the metric the eval harness uses)."""
    vals = []
    for o, t, p in zip(out, truth, points):
        lo = np.clip(np.floor(p[:, :2].min(0)).astype(int), 0, len(t))
        hi = np.clip(np.ceil(p[:, :2].max(0)).astype(int), 0, len(t))
        vals.append(ssim(o[lo[1]:hi[1], lo[0]:hi[0]], t[lo[1]:hi[1], lo[0]:hi[0]]))
    return float(np.mean(vals))


def sheet(columns: Mapping[str, np.ndarray], path: str, cell: int | None = None) -> str:
    """A PNG contact sheet: one column per entry (uint8 (N, S, S, 3) or (N, S, S)), titled, one row
    per sample; written atomically."""
    cols = []
    cell = cell or max(np.asarray(v).shape[1] for v in columns.values())
    for title, imgs in columns.items():
        imgs = np.asarray(imgs)
        if imgs.ndim == 3:
            imgs = np.repeat(imgs[..., None], 3, -1)
        if imgs.shape[1] != cell:
            imgs = np.stack([cv2.resize(i, (cell, cell), interpolation=cv2.INTER_NEAREST)
                             for i in imgs])
        head = np.full((16, imgs.shape[2], 3), 255, np.uint8)
        cv2.putText(head, title[:18], (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1,
                    cv2.LINE_AA)
        cols.append(np.vstack([head, *imgs]))
    img = np.hstack(cols)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.png"
    cv2.imwrite(tmp, cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    os.replace(tmp, path)
    return path


# ------------------------------------------------------------------------------- initial weights

def init_from_onnx(module: nn.Module, path: str, key: str) -> None:
    """Load ``module``'s parameters from ONNX weights it exported (initializers keep the parameter
    names; float16 ones carry a ``_fp16`` suffix).  A missing tensor names the file and the key."""
    import onnx
    from onnx import numpy_helper

    if not os.path.isfile(path):
        raise ReenactError("weights file not found", path=path, key=key)
    try:
        model = onnx.load(path)
    except Exception as exc:
        raise ReenactError(f"not readable as ONNX weights ({type(exc).__name__})", path=path,
                           key=key) from None
    found = {}
    for init in model.graph.initializer:
        name = init.name[:-5] if init.name.endswith("_fp16") else init.name
        found[name] = numpy_helper.to_array(init)
    state = module.state_dict()
    missing = [k for k in state if k not in found and state[k].dtype.is_floating_point]
    if missing:
        raise ReenactError(f"these weights do not fit this component (no tensor '{missing[0]}')",
                           path=path, key=key)
    for k, v in state.items():
        if k in found:
            arr = torch.from_numpy(np.asarray(found[k], np.float32).copy())
            if tuple(arr.shape) != tuple(v.shape):
                raise ReenactError(f"these weights do not fit this component ('{k}' has shape "
                                   f"{list(arr.shape)}, expected {list(v.shape)})", path=path,
                                   key=key)
            v.copy_(arr.to(v.dtype))


def start_from(module: nn.Module, init: str | None, *, method: str, shipped: str) -> str | None:
    """``init``: None (random), "shipped" (the component's shipped ONNX weights), an ONNX file or
    a checkpoint of this method.  Returns what it loaded."""
    if not init:
        return None
    if init == "shipped":
        init = shipped
    if init.endswith(".onnx"):
        init_from_onnx(module, init, key=f"{method}.init")
        return init
    ck = torchkit.load_checkpoint(init, method=method)
    name = next(iter(ck["modules"]))
    module.load_state_dict(ck["modules"][name])
    return init


# ------------------------------------------------------------------------------------- the run

def batch_tensors(b: PairBatch) -> dict[str, torch.Tensor]:
    return {"ref": torch.from_numpy(facecrops.to_net(b.ref)),
            "truth": torch.from_numpy(facecrops.to_net(b.truth)),
            "valid": torch.from_numpy(b.valid[:, None].copy()),
            "labels": torch.from_numpy(b.labels.astype(np.int64)),
            "ref_labels": torch.from_numpy(b.ref_labels.astype(np.int64))}


class ImageRun:
    """What an image component's training shares: the image dataset (built from clips/folders and
    cached in ``out``, or loaded), training and held-out self-reenactment pairs, the config with
    overrides, progress with the loss, and a preview sheet of held-out frames at every validation.
    """

    def __init__(self, method: str, data: str, out: str, defaults: Mapping[str, Any], *,
                 steps: int | None, seed: int, progress, size: int | None = None,
                 config: Mapping[str, Any] | None = None, max_frames: int | None = None):
        cfg = dict(defaults)
        unknown = sorted(set(config or {}) - set(cfg))
        if unknown:
            raise ReenactError(f"unknown training setting '{unknown[0]}'; {method} has: "
                               f"{', '.join(sorted(cfg))}", key="config")
        cfg.update(config or {})
        if size is not None:
            cfg["size"] = size
        if max_frames is not None:
            cfg["max_frames"] = max_frames
        cfg["size"] = facecrops.check_size(cfg["size"])
        cfg["steps"] = int(cfg["steps"] if steps is None else steps)
        cfg["seed"] = int(seed)
        cfg["data"] = os.path.abspath(data)
        self.method, self.out, self.cfg = method, os.fspath(out), cfg
        os.makedirs(self.out, exist_ok=True)
        self.ds: ImageDataset = cached_images(
            data, self.out, size=cfg["size"], max_frames=cfg["max_frames"],
            progress=(lambda stage, d, n: progress(stage, d, n)) if progress else None)
        if size is None and "size" not in (config or {}):
            cfg["size"] = self.ds.size          # a built dataset says its own size
        if self.ds.size != cfg["size"]:
            raise ReenactError(f"this image dataset holds {self.ds.size} px crops, the training "
                               f"asks for {cfg['size']}", path=data, key="size")
        self.rng = np.random.default_rng(seed)
        self.pairs = ImagePairs(self.ds, "train", self.rng)
        try:
            self.val = ImagePairs(self.ds, "val", np.random.default_rng(seed + 1))
            self.val_batch = self.val.fixed(cfg["val_frames"])
        except ReenactError:
            self.val, self.val_batch = None, None
        self._progress = progress
        self.trainer: torchkit.Trainer | None = None

    def progress(self, stage: str, done: int, total: int) -> None:
        """The trainer's progress with the latest losses (the first two) on the line."""
        if not self._progress:
            return
        h = self.trainer.history if self.trainer else {}
        keys = [k for k in h if not k.startswith("val_")][:2]
        note = " ".join(f"{k} {np.mean(h[k][-20:]):.3g}" for k in keys if h[k])
        self._progress(f"{stage} {note}".strip(), done, total)

    def adversarial(self, g: nn.Module, d: nn.Module, *, init: str | None, shipped: str):
        """The GAN set-up every image method shares: ``g`` started from ``init`` (recorded in the
        config), the optional VGG (``vgg`` setting), Adam for G and D with the config's lr/betas.
        Returns (vgg or None, opt_g, opt_d)."""
        cfg = self.cfg
        cfg["init"] = start_from(g, init, method=self.method, shipped=shipped)
        vgg = VGGFeatures(cfg["vgg"]) if cfg["vgg"] else None
        opt_g = torch.optim.Adam(g.parameters(), lr=cfg["lr"], betas=tuple(cfg["betas"]))
        opt_d = torch.optim.Adam(d.parameters(), lr=cfg["lr"], betas=tuple(cfg["betas"]))
        return vgg, opt_g, opt_d

    def trainer_for(self, modules, optimizers, *, validate: Callable[[], Mapping[str, float]]
                    ) -> torchkit.Trainer:
        self.trainer = torchkit.Trainer(
            self.method, self.out, modules=modules, optimizers=optimizers,
            steps=self.cfg["steps"], seed=self.cfg["seed"], config=self.cfg,
            progress=self.progress, every=self.cfg.get("checkpoint_every", 200),
            validate=validate if self.val_batch is not None else None,
            validate_every=self.cfg["val_every"])
        return self.trainer

    def step_batch(self, step: int, n: int) -> PairBatch:
        """The batch of step ``step`` (a resumed run draws the same ones)."""
        self.pairs.rng = np.random.default_rng([self.cfg["seed"], step])
        return self.pairs.batch(n)

    def preview(self, columns: Mapping[str, np.ndarray]) -> None:
        step = self.trainer.step if self.trainer else 0
        path = sheet(columns, os.path.join(self.out, "previews", f"step-{step:06d}.png"))
        import shutil

        shutil.copyfile(path, os.path.join(self.out, "preview.png"))
