"""Reading and writing videos: containers (mp4/mov/avi/gif/webm) and folders of PNG/JPEG frames.

Everything that enters the project from a video file goes through here, so the conversion rules live
in one place:

* frames come out as uint8 RGB (H, W, 3) (`to_rgb_uint8`: grayscale is replicated, RGBA is
  composited on white, 16-bit and float frames are rescaled);
* `resize_and_pad` brings a frame to a square `resolution` x `resolution` canvas keeping its aspect
  ratio (long side = resolution, white padding, centred);
* still images (frame folders, the source image) are decoded by Pillow (`read_image`): EXIF
  orientation applied, CMYK/YCCK/palette/YCbCr images converted to RGB by Pillow, and images of up
  to `max_image_pixels()` pixels accepted: DEFAULT_MAX_IMAGE_PIXELS (16384 x 16384), or
  $INTERNET_JAX_MAX_IMAGE_PIXELS; larger ones are refused naming the limit (Pillow's own
  decompression-bomb limit, 89 M pixels, is replaced by this one);
* bad input raises `VideoReadError` with a one-line message that starts with the offending path.

Containers are decoded with PyAV (the FFmpeg bindings imageio's pyav plugin also uses), one frame at
a time, so a long video is never held in memory unless the caller stacks it.
"""

from __future__ import annotations

import os
import re
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import av
import cv2
import numpy as np
from PIL import Image, ImageOps

from internet_jax import errors

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".gif", ".webm", ".mkv")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")
# Containers write_video can put an h264 stream into.
_H264_SUFFIXES = (".mp4", ".mov", ".mkv")
# The largest still image decoded, in pixels (805 MB as uint8 RGB); the environment variable
# overrides it for a process.
DEFAULT_MAX_IMAGE_PIXELS = 16384 * 16384
MAX_IMAGE_PIXELS_ENV = "INTERNET_JAX_MAX_IMAGE_PIXELS"
# Pillow modes whose arrays `to_rgb_uint8` reads as they are (bool, uint8, uint16).
_ARRAY_MODES = ("1", "L", "LA", "RGB", "RGBA", "I;16")


class DataError(ValueError):
  """Bad input data (missing directory, unusable file, ...); the message is one line."""


class VideoReadError(DataError):
  """A video file or frame folder cannot be read; the message starts with its path."""


def one_line(error: BaseException | str) -> str:
  """FFmpeg/OpenCV messages may span lines; project errors are one line. PyAV's str() repeats the
  file name, which the caller already puts first, so an OSError's strerror is preferred."""
  return errors.one_line(getattr(error, "strerror", None) or error)


def _natural_key(name: str):
  # "frame2.png" before "frame10.png"; zero-padded names (FOMM's 0000000.png) sort as usual.
  return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _frame_files(folder: Path) -> list[Path]:
  files = [p for p in folder.iterdir()
           if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES and not p.name.startswith(".")]
  return sorted(files, key=lambda p: _natural_key(p.name))


def is_video(path: str | os.PathLike) -> bool:
  """Whether `path` is a video: a file with a video suffix, or a folder holding PNG/JPEG frames."""
  path = Path(path)
  if path.name.startswith("."):  # hidden files, e.g. macOS "._x.mp4" resource forks
    return False
  if path.is_file():
    return path.suffix.lower() in VIDEO_SUFFIXES
  if path.is_dir():
    return any(p.suffix.lower() in FRAME_SUFFIXES for p in path.iterdir())
  return False


def video_name(path: str | os.PathLike) -> str:
  """The stable name of a video: its file stem, or its folder name without a video suffix.

  FOMM's PNG layout names frame folders like the videos they came from (`91-3003CN5S.mp4/`), so
  `91-3003CN5S.mp4` and `91-3003CN5S.mp4/` both map to `91-3003CN5S`.
  """
  path = Path(path)
  if path.suffix.lower() in VIDEO_SUFFIXES:
    return path.name[:-len(path.suffix)]
  return path.name


def list_videos(split_dir: str | os.PathLike) -> list[Path]:
  """The videos directly inside `split_dir`, sorted by name.

  A video is a `.mp4/.mov/.avi/.gif/.webm/.mkv` file or a folder of `.png/.jpg` frames. Other files
  (e.g. the synthetic dataset's `<name>.npz` ground truth), empty folders and hidden entries are
  ignored. Raises DataError if `split_dir` is not a directory or two videos share a name.
  """
  split_dir = Path(split_dir)
  if not split_dir.is_dir():
    raise DataError(f"{split_dir}: not a directory")
  videos = sorted((p for p in split_dir.iterdir() if is_video(p)),
                  key=lambda p: _natural_key(p.name))
  seen: dict[str, Path] = {}
  for path in videos:
    name = video_name(path)
    if name in seen:
      raise DataError(f"{path}: same video name {name!r} as {seen[name]}; rename or remove one")
    seen[name] = path
  return videos


def to_rgb_uint8(frame: np.ndarray, path: str | os.PathLike = "<array>") -> np.ndarray:
  """Converts a decoded frame to uint8 RGB (H, W, 3).

  Rules: uint8 is kept; uint16 is scaled by 255/65535 (rounded); float is taken as [0, 1], clipped
  and scaled by 255 (rounded); bool becomes 0/255. Grayscale (H, W) or (H, W, 1) is replicated to
  three channels; gray+alpha (H, W, 2) and RGBA (H, W, 4) are composited on white
  (out = rgb * a + white * (1 - a)). Any other dtype or shape raises VideoReadError naming `path`.
  """
  frame = np.asarray(frame)
  if frame.ndim == 2:
    frame = frame[..., None]
  if frame.ndim != 3 or frame.shape[-1] not in (1, 2, 3, 4) or 0 in frame.shape:
    raise VideoReadError(f"{path}: unsupported frame shape {frame.shape}")
  channels = frame.shape[-1]
  if frame.dtype == np.uint8 and channels == 3:
    return np.ascontiguousarray(frame)  # the common case, no copy

  if frame.dtype == np.uint8:
    unit = frame.astype(np.float32) / 255.0
  elif frame.dtype == np.uint16:
    unit = frame.astype(np.float32) / 65535.0
  elif frame.dtype == np.bool_:
    unit = frame.astype(np.float32)
  elif np.issubdtype(frame.dtype, np.floating):
    unit = np.clip(np.nan_to_num(frame.astype(np.float32)), 0.0, 1.0)
  else:
    raise VideoReadError(f"{path}: unsupported frame dtype {frame.dtype}")

  if channels in (2, 4):
    alpha = unit[..., -1:]
    color = unit[..., :-1]
    unit = color * alpha + (1.0 - alpha)  # composite on white
  if unit.shape[-1] == 1:
    unit = np.repeat(unit, 3, axis=-1)
  return np.round(unit * 255.0).astype(np.uint8)


def fit_geometry(height: int, width: int, resolution: int) -> tuple[int, int, int, int]:
  """(new_h, new_w, top, left) of `resize_and_pad` for an H x W frame: the size it is resized to
  and where it is placed in the R x R square (annotations of the frame follow the same rule)."""
  scale = resolution / max(height, width)
  new_h = max(1, int(round(height * scale)))
  new_w = max(1, int(round(width * scale)))
  return new_h, new_w, (resolution - new_h) // 2, (resolution - new_w) // 2


def resize_and_pad(frame: np.ndarray, resolution: int) -> np.ndarray:
  """Fits a uint8 RGB frame into a white `resolution` x `resolution` square.

  Rule: scale s = resolution / max(H, W); the frame is resized to (round(H s), round(W s)) (at least
  1 pixel) so that its long side equals `resolution`, with cv2.INTER_AREA when shrinking and
  cv2.INTER_LINEAR when enlarging (no resampling when s == 1); it is then placed in the centre of a
  white (255) square, the odd pixel of padding going to the bottom/right. UBC Fashion's 720x940
  (W x H) portrait frames become 392x512 at 512 with 60 white columns on each side.
  """
  if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
    raise ValueError(f"resize_and_pad expects uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
  height, width = frame.shape[:2]
  new_h, new_w, top, left = fit_geometry(height, width, resolution)
  if (new_h, new_w) != (height, width):
    interpolation = cv2.INTER_AREA if new_h < height or new_w < width else cv2.INTER_LINEAR
    frame = cv2.resize(frame, (new_w, new_h), interpolation=interpolation)
  if new_h == new_w == resolution:
    return np.ascontiguousarray(frame)
  out = np.full((resolution, resolution, 3), 255, np.uint8)
  out[top:top + new_h, left:left + new_w] = frame
  return out


def max_image_pixels() -> int:
  """The pixel limit of `read_image`: $INTERNET_JAX_MAX_IMAGE_PIXELS, else
  DEFAULT_MAX_IMAGE_PIXELS. A value that is not a positive integer is a ValueError naming it."""
  value = os.environ.get(MAX_IMAGE_PIXELS_ENV, "").strip()
  if not value:
    return DEFAULT_MAX_IMAGE_PIXELS
  if not value.isdigit() or int(value) < 1:
    raise ValueError(f"${MAX_IMAGE_PIXELS_ENV}: must be a positive number of pixels, got "
                     f"{value!r}")
  return int(value)


def _too_large(path: Path, limit: int, size: str = "") -> VideoReadError:
  return VideoReadError(f"{path}: image {size}larger than the limit of {limit} pixels (set "
                        f"${MAX_IMAGE_PIXELS_ENV} to raise it)")


def _open_image(path: Path) -> Image.Image:
  """Pillow's lazy image (header read), within the pixel limit."""
  limit = max_image_pixels()
  # Pillow's own check reads this global: it warns above it and refuses above twice it. Ours is
  # the limit that holds, so Pillow's default (89 M pixels) does not refuse valid photos.
  Image.MAX_IMAGE_PIXELS = limit
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", Image.DecompressionBombWarning)
      image = Image.open(path)
  except Image.DecompressionBombError:
    raise _too_large(path, limit) from None
  except Image.UnidentifiedImageError:
    raise VideoReadError(f"{path}: not a readable image") from None
  except OSError as e:  # missing, a folder, no permission
    raise VideoReadError(f"{path}: {one_line(e)}") from None
  width, height = image.size
  if width * height > limit:
    image.close()
    raise _too_large(path, limit, f"{width}x{height} = {width * height} pixels, ")
  return image


def read_image(path: str | os.PathLike) -> np.ndarray:
  """An image file (any format Pillow reads) as uint8 RGB (H, W, 3) at its own size.

  EXIF orientation is applied; palette, CMYK (and YCCK JPEG), YCbCr, ... images are converted
  to RGB by Pillow (to RGBA, composited on white, when they have transparency); gray, alpha and
  16-bit gray images then by `to_rgb_uint8` (Pillow keeps the high byte of 16-bit colour).
  VideoReadError names the path: unreadable, or more than `max_image_pixels()` pixels.
  """
  path = Path(path)
  with _open_image(path) as opened:
    try:
      image = ImageOps.exif_transpose(opened)
      if image.mode not in _ARRAY_MODES:
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
      array = np.asarray(image)
    except Exception:
      # Decoders raise many types for bad bytes; any of them means the same to the user.
      raise VideoReadError(f"{path}: not a readable image") from None
  return to_rgb_uint8(array, path)


def _container_frames(path: Path) -> Iterator[np.ndarray]:
  try:
    container = av.open(str(path))
  except (av.FFmpegError, OSError, UnicodeDecodeError) as e:
    raise VideoReadError(f"{path}: not a readable video ({one_line(e)})") from None
  with container:
    if not container.streams.video:
      raise VideoReadError(f"{path}: no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"  # frame-threaded decoding
    # mp4/mov state their sample count exactly; fewer decoded frames means a truncated file.
    expected = stream.frames if path.suffix.lower() in (".mp4", ".mov") else 0
    count = 0
    try:
      for frame in container.decode(stream):
        # Formats with an alpha channel or a palette (GIF transparency) are composited on white.
        fmt = frame.format
        has_alpha = len(fmt.components) in (2, 4) or fmt.has_palette
        array = frame.to_ndarray(format="rgba" if has_alpha else "rgb24")
        count += 1
        yield to_rgb_uint8(array, path)
    except av.FFmpegError as e:
      raise VideoReadError(f"{path}: decoding failed ({one_line(e)})") from None
    if 0 < count < expected:
      raise VideoReadError(f"{path}: truncated, decoded {count} of {expected} frames")


def read_video_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
  """Yields the frames of a video file or frame folder, one at a time, as uint8 RGB (H, W, 3).

  Frames are converted with `to_rgb_uint8` and are NOT resized: frames of different sizes within
  one video come out as they are (the dataset builder resizes each frame independently).
  Raises VideoReadError (during iteration) for an unreadable file or frame, and after the last
  frame if the video had none.
  """
  path = Path(path)
  if path.is_dir():
    files = _frame_files(path)
    frames: Iterable[np.ndarray] = (read_image(f) for f in files)
  elif path.is_file():
    if path.suffix.lower() not in VIDEO_SUFFIXES:
      raise VideoReadError(f"{path}: not a video (suffix {path.suffix!r}; expected one of "
                           f"{', '.join(VIDEO_SUFFIXES)} or a folder of frames)")
    frames = _container_frames(path)
  else:
    raise VideoReadError(f"{path}: no such file or directory")
  count = 0
  for frame in frames:
    count += 1
    yield frame
  if count == 0:
    raise VideoReadError(f"{path}: no frames")


def read_video(path: str | os.PathLike, resolution: int | None = None) -> np.ndarray:
  """All frames of a video as one uint8 array (T, H, W, 3), resized and padded if `resolution`.

  Without `resolution` all frames must have one size (VideoReadError otherwise).
  """
  frames = []
  for frame in read_video_frames(path):
    if resolution is not None:
      frame = resize_and_pad(frame, resolution)
    elif frames and frame.shape != frames[0].shape:
      first = frames[0].shape
      raise VideoReadError(f"{path}: frame {len(frames)} is {frame.shape[1]}x{frame.shape[0]}, "
                           f"frame 0 is {first[1]}x{first[0]}; pass a resolution")
    frames.append(frame)
  return np.stack(frames)


def video_fps(path: str | os.PathLike) -> float | None:
  """Frame rate of a video file, or None for frame folders and files that do not state one."""
  path = Path(path)
  if path.is_dir():
    return None
  try:
    with av.open(str(path)) as container:
      if not container.streams.video:
        raise VideoReadError(f"{path}: no video stream")
      stream = container.streams.video[0]
      rate = stream.average_rate or stream.guessed_rate or stream.base_rate
  except (av.FFmpegError, OSError, UnicodeDecodeError) as e:
    raise VideoReadError(f"{path}: not a readable video ({one_line(e)})") from None
  return float(rate) if rate else None


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float = 30.0,
                crf: int = 18) -> Path:
  """Writes uint8 RGB frames (H, W, 3) as an h264 video (yuv420p) to `path` (.mp4/.mov/.mkv).

  `frames` may be any iterable (it is consumed one frame at a time). All frames must have the
  size of the first. h264 4:2:0 needs even sizes: an odd height or width is padded by repeating
  the last row/column. `crf` is the x264 quality (0 lossless luma, 18 visually lossless, 23
  default). Returns the path.
  """
  path = Path(path)
  if path.suffix.lower() not in _H264_SUFFIXES:
    raise ValueError(f"{path}: write_video writes h264 into {', '.join(_H264_SUFFIXES)} only")
  if fps <= 0:
    raise ValueError(f"{path}: fps must be positive, got {fps}")
  path.parent.mkdir(parents=True, exist_ok=True)
  container = None
  stream = None
  shape = None
  count = 0
  try:
    for frame in frames:
      frame = np.asarray(frame)
      if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
        raise ValueError(f"{path}: frames must be uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
      if shape is None:
        shape = frame.shape
        container = av.open(str(path), mode="w")
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.height = shape[0] + shape[0] % 2
        stream.width = shape[1] + shape[1] % 2
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf)}
      elif frame.shape != shape:
        raise ValueError(f"{path}: frame {count} has shape {frame.shape}, frame 0 {shape}")
      if shape[0] % 2 or shape[1] % 2:
        frame = np.pad(frame, ((0, shape[0] % 2), (0, shape[1] % 2), (0, 0)), mode="edge")
      video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
      for packet in stream.encode(video_frame):
        container.mux(packet)
      count += 1
    if count == 0:
      raise ValueError(f"{path}: no frames to write")
    for packet in stream.encode():  # flush the encoder
      container.mux(packet)
  except BaseException:
    if container is not None:
      try:
        container.close()
      except av.FFmpegError:
        pass  # the original error is the one to report
      path.unlink(missing_ok=True)  # no half-written video left behind
    raise
  container.close()
  return path
