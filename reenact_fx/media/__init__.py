"""Media in and out through PyAV: stills and videos read as RGB frames (:mod:`.reader`), videos or
PNG sequences written atomically (:mod:`.writer`), audio cut from a source and muxed (:mod:`.audio`).

PyAV facts these modules rely on (checked with av 18 / FFmpeg 8):
- ``VideoFrame.rotation`` is the display-matrix angle in *counter-clockwise* degrees; rotating the
  decoded picture counter-clockwise by it (np.rot90 with k = rotation / 90) gives the upright picture
  (cross-checked against OpenCV's own auto-orientation).
- conversion to RGB uses the YUV matrix the frame is tagged with (untagged: BT.601), so the writer
  converts with BT.709 *and* tags the stream BT.709 (DNxHR is always read back as BT.709).
- a frame's ``pts`` is the pts of the packet it came from, so a packet scan (demux, no decode) tells the
  time of every frame, and decoded frames are matched to indices by pts.
"""

from .reader import IMAGE_EXTS, STILL_FPS, MediaReader, read_still
from .writer import CODECS, MediaWriter

__all__ = ["CODECS", "IMAGE_EXTS", "STILL_FPS", "MediaReader", "MediaWriter", "read_still"]
