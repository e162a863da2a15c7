"""The four kinds of component a plugin can provide, and the data each one sees.

A component class declares its name, version and parameter schema; an instance holds resolved parameter
values in ``self.p``.  Converters and smoothers work on whole landmark sequences at analysis time;
generators and mixers work on one frame at render time and must not keep state between frames, so that
rendering frame t alone gives exactly frame t of a full render.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping

import numpy as np

from .face.crop import SquareCrop
from .params import Param, Schema

if TYPE_CHECKING:
    from .pipeline.analysis import Analysis

KINDS = ("converter", "generator", "smoother", "mixer")


class Component:
    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""
    version: ClassVar[str] = "0"
    summary: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    # the component used when a settings file or command line names none of this kind (one per
    # kind; the training-free plugins shipped with reenact-fx declare it)
    default: ClassVar[bool] = False

    def __init__(self, values: Mapping[str, Any] | None = None):
        self.p = self.schema().resolve(values)

    @classmethod
    def schema(cls) -> Schema:
        return Schema(cls.name, tuple(cls.params))

    def prepare(self, analysis: "Analysis") -> None:
        """Called once after analysis, before any frame is rendered (load weights, precompute).
        A streamed analysis passes its first plan: only its first frames are final then."""


class Trainable:
    """Mixin of a learned component: ``reenact-fx train`` and ``reenact-fx export`` call these.

    A plugin overrides :meth:`training` to import and return its torch training module (torch is
    an extra, so it is imported only when asked for); that module defines
    ``train(data, out, *, steps, resume, seed, progress, **options) -> checkpoint path`` and
    ``export(checkpoint, onnx_path) -> onnx path``.  ``options`` are the method's own keyword
    arguments (the image components take ``size``, ``init``, ``config``, ``max_frames``).
    """

    @classmethod
    def training(cls) -> Any:
        raise NotImplementedError(f"{cls.__name__} names no training module")

    @classmethod
    def train(cls, data: str, out: str, *, steps: int | None = None, resume: bool = False,
              seed: int = 0, progress: Callable[[str, int, int], None] | None = None,
              **options: Any) -> str:
        return cls.training().train(data, out, steps=steps, resume=resume, seed=seed,
                                    progress=progress, **options)

    @classmethod
    def export(cls, checkpoint: str, onnx_path: str) -> str:
        return cls.training().export(checkpoint, onnx_path)


def trainable(cls: type) -> bool:
    return isinstance(cls, type) and issubclass(cls, Trainable)


@dataclass
class ConvertInput:
    """What a converter sees: both tracks resampled to the output frame grid (T frames)."""

    driver: np.ndarray          # (T, 478, 3) driver landmarks per output frame
    driver_valid: np.ndarray    # (T,) bool
    driver_ref: np.ndarray      # (478, 3) the driver's reference (neutral) frame
    target: np.ndarray          # (T, 478, 3) target landmarks per output frame (a still: repeated)
    target_valid: np.ndarray    # (T,) bool
    target_ref: np.ndarray      # (478, 3) the target's reference frame
    target_is_still: bool
    fps: float
    target_size: tuple[int, int] | None = None   # (width, height) of the target's frames: a
    # moved head is kept inside them (posing.keep_in_frame)


class Converter(Component):
    """Driver landmarks -> landmarks with the driver's motion and the target's face shape."""

    kind = "converter"
    # frames after t that frame t's output depends on (0: frame by frame), or None: the whole
    # sequence.  With a bound, a render starts before the driver is tracked to its end (the
    # effect converts the frames tracked so far; frame t is final once t + lookahead is known).
    lookahead: ClassVar[int | None] = None

    def convert(self, x: ConvertInput) -> np.ndarray:  # (T, 478, 3)
        raise NotImplementedError


class Smoother(Component):
    """Temporal filter over a whole landmark sequence (run once; deterministic)."""

    kind = "smoother"

    def smooth(self, points: np.ndarray, valid: np.ndarray, fps: float) -> np.ndarray:
        raise NotImplementedError

    def lookahead(self, fps: float) -> int | None:
        """Frames after t that frame t's output depends on, or None: the whole sequence (the
        render then waits for the whole clip to be tracked).  Smoothing a prefix of a sequence
        must give the same frames as smoothing all of it, up to ``lookahead`` frames before the
        prefix's end."""
        return None


@dataclass
class GenerateInput:
    """One frame for a generator, in an aligned face crop of size (S, S)."""

    image: np.ndarray           # (S, S, 3) uint8 target crop
    src: np.ndarray             # (478, 3) target landmarks in crop pixels (where the face is now)
    dst: np.ndarray             # (478, 3) converted landmarks in crop pixels (where it must go)
    driver_image: np.ndarray | None = None   # the driver's frame (H, W, 3) uint8, when the
    driver_pts: np.ndarray | None = None     # generator wants its pixels; its landmarks (478, 3)
    frame: int = 0
    # the target's head region, for a generator with ``needs_head_region`` (None otherwise, or
    # when the head does not move in this frame): computed per clip at analysis time
    person: np.ndarray | None = None       # (S, S) float32 person matte (hair included) in [0, 1]
    background: np.ndarray | None = None   # (S, S, 3) uint8 the background without the person
    body: np.ndarray | None = None         # (K, 2) body points that stay fixed (shoulders), crop px


@dataclass
class GenerateOutput:
    image: np.ndarray           # (S, S, 3) uint8 generated face crop
    mask: np.ndarray            # (S, S) float32 in [0, 1]: where the generated face should be used
    extra: dict = field(default_factory=dict)


class Generator(Component):
    """Makes the face in an aligned crop.  ``generate`` is called from several threads at once for
    different frames: keep no state between calls."""

    kind = "generator"
    needs_driver_pixels: ClassVar[bool] = False
    # True: the effect finds the target's person matte, body points and background plate at
    # analysis time and passes them in GenerateInput (person, background, body)
    needs_head_region: ClassVar[bool] = False
    # the smallest crop side, relative to the face's extent, the generator works in (a whole-head
    # warp needs room for the hair and the neck); effect.crop_margin applies when larger
    crop_margin: ClassVar[float] = 0.0

    def generate(self, x: GenerateInput) -> GenerateOutput:
        raise NotImplementedError


@dataclass
class MixOutput:
    image: np.ndarray           # (H, W, 3) uint8 the full frame with the face pasted
    alpha: np.ndarray           # (y1 - y0, x1 - x0) float32 in [0, 1]: the face matte inside box
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1); the matte is 0 everywhere else

    def matte(self) -> np.ndarray:
        """The face matte over the whole frame, (H, W) float32."""
        m = np.zeros(self.image.shape[:2], np.float32)
        x0, y0, x1, y1 = self.box
        m[y0:y1, x0:x1] = self.alpha
        return m


class Mixer(Component):
    """Puts a generated crop back into the full target frame."""

    kind = "mixer"

    def mix(self, frame: np.ndarray, out: GenerateOutput, crop: SquareCrop) -> MixOutput:
        """Paste ``out`` into ``frame`` (in place; the caller owns it) and return it with the matte.

        ``crop`` says where the generated square lies in the frame (``crop.uncut`` brings an image
        back, ``crop.inverse`` is the crop -> frame affine); pixels outside its footprint must be
        left exactly as they are.  Called from several threads at once for different frames: keep
        no state between calls.
        """
        raise NotImplementedError
