"""Small videos that the tests write: smooth moving gradients (h264 keeps them well) as arrays
or PNG-frame folders."""
import cv2
import numpy as np


def smooth_frames(count, height, width, seed=0):
  """Frames that h264 keeps well: moving smooth gradients."""
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[0:height, 0:width].astype(np.float32)
  phase = rng.uniform(0, 6, 3)
  frames = []
  for t in range(count):
    channels = [127 + 100 * np.sin(x / width * 3 + y / height * 2 + phase[c] + 0.3 * t)
                for c in range(3)]
    frames.append(np.stack(channels, -1).round().astype(np.uint8))
  return frames


def write_pngs(folder, frames, names=None):
  """Writes RGB/RGBA/gray frames (any dtype cv2 supports) as PNGs (cv2 wants BGR order)."""
  folder.mkdir(parents=True)
  for index, frame in enumerate(frames):
    if frame.ndim == 3 and frame.shape[-1] == 3:
      frame = frame[..., ::-1]
    elif frame.ndim == 3 and frame.shape[-1] == 4:
      frame = frame[..., [2, 1, 0, 3]]
    name = names[index] if names else f"{index:07d}.png"
    assert cv2.imwrite(str(folder / name), np.ascontiguousarray(frame))


def save_cmyk_jpeg(path, frame):
  """An RGB uint8 frame saved as a CMYK JPEG, as print workflows write them (C = 255 - R, ...,
  no black ink, so that any CMYK -> RGB formula gives the frame back)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  black = np.zeros(frame.shape[:2] + (1,), np.uint8)
  cmyk = np.ascontiguousarray(np.concatenate([255 - frame, black], -1))
  Image.frombytes("CMYK", frame.shape[1::-1], cmyk.tobytes()).save(path, quality=95)
  return path


def save_with_orientation(path, frame, orientation):
  """An RGB uint8 frame stored as it is, with the EXIF orientation (tag 0x0112) saying how a
  viewer turns it: 6 a quarter turn clockwise, 8 anticlockwise."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  exif = Image.Exif()
  exif[0x0112] = orientation
  Image.fromarray(frame).save(path, exif=exif)
  return path
