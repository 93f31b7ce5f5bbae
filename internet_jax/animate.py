"""Animation: drive one source image with a sequence of frames.

The source is encoded once (anchors, base-resolution image, encoder features at every scale) and
the encoding is reused for every driving frame; driving frames are processed in fixed-size batches
so the generator compiles once per shape.
"""

from __future__ import annotations

from typing import Any, Iterator

import jax
import jax.numpy as jnp
import numpy as np


class Animator:
  """Jitted `encode_source` + batched `generate` for one generator and its parameters."""

  def __init__(self, generator, params: Any, batch_size: int = 8):
    self.generator = generator
    self.params = params
    self.batch_size = batch_size
    self._encode = jax.jit(lambda p, s: generator.apply(p, s, method="encode_source"))

    def generate(p, encoding, driving):
      anchors = generator.apply(p, driving, method="detect_anchors")
      # The source encoding has batch 1; every driving frame of the chunk shares it.
      tiled = jax.tree.map(lambda x: jnp.broadcast_to(x, (driving.shape[0],) + x.shape[1:]), encoding)
      return generator.apply(p, tiled, anchors, method="generate")

    self._generate = jax.jit(generate)

  def encode(self, source: np.ndarray) -> Any:
    """source: uint8 (H, W, 3) at the model resolution."""
    return self._encode(self.params, jnp.asarray(source, jnp.float32)[None] / 255.0)

  def generate_chunks(self, encoding: Any, driving: np.ndarray) -> Iterator[tuple[int, dict]]:
    """Yields (number of valid frames, outputs) per chunk of `batch_size` driving frames."""
    for start in range(0, len(driving), self.batch_size):
      chunk = driving[start:start + self.batch_size]
      valid = len(chunk)
      if valid < self.batch_size:  # pad the last chunk: one compiled shape for the whole video
        chunk = np.concatenate([chunk, np.repeat(chunk[-1:], self.batch_size - valid, axis=0)])
      outputs = self._generate(self.params, encoding, jnp.asarray(chunk, jnp.float32) / 255.0)
      yield valid, outputs

  def animate(self, source: np.ndarray, driving: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) source and (T, H, W, 3) driving frames -> uint8 (T, H, W, 3) output."""
    encoding = self.encode(source)
    frames = [np.asarray(outputs["prediction"][:valid])
              for valid, outputs in self.generate_chunks(encoding, driving)]
    return to_uint8(np.concatenate(frames))


def to_uint8(images: np.ndarray) -> np.ndarray:
  return np.clip(np.round(np.asarray(images, np.float32) * 255.0), 0, 255).astype(np.uint8)
