"""INTERnet inference (`Method.renderer`): the source encoded once (anchors, base-resolution
image, encoder features at every scale) and reused for every chunk of driving frames; absolute
motion, or FOMM's relative motion (first-order-model demo.py, `normalize_kp`): the driving
anchors become kp_s + (kp_d - kp_d0) * scale and the Jacobians (J_d J_d0^-1) J_s, where d0 is the
first driving frame; `adapt_scale` sets scale = sqrt(hull area of kp_s) / sqrt(hull area of
kp_d0). Relative motion assumes the source and the first driving frame show the same pose.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy.spatial import ConvexHull, QhullError

from input_pipeline.video_io import DataError
from internet_jax import geometry, inference, visualize
from internet_jax import method as method_lib
from internet_jax.methods.internet import networks

def adapt_scale_factor(source_values: Any, initial_values: Any) -> float:
  """sqrt(area of the convex hull of the source anchors) / sqrt(area of the first driving
  frame's): how much larger the source person is than the driving one.

  values: (K, 2) or (B, K, 2) anchor coordinates; of a batch only the first example counts, as in
  FOMM. Raises ValueError when either hull has no area (collinear or coincident anchors).
  """
  areas = []
  for name, values in (("source", source_values), ("first driving frame", initial_values)):
    points = np.asarray(values, np.float64)
    points = points.reshape((-1,) + points.shape[-2:])[0]
    try:
      area = ConvexHull(points).volume  # for 2-D points .volume is the area (.area the perimeter)
    except (QhullError, ValueError):
      area = 0.0
    if not area > 0.0:
      raise ValueError(f"adapt_scale: the {name} anchors span no area (degenerate convex hull); "
                       "animate without adapt_scale")
    areas.append(area)
  return float(np.sqrt(areas[0]) / np.sqrt(areas[1]))


def relative_anchors(source: dict, driving: dict, driving_initial: dict, scale: Any = 1.0) -> dict:
  """FOMM's relative motion with a given scale; jnp only, so it also runs inside jit.

  value: kp_s + (kp_d - kp_d0) * scale; jacobian: (J_d J_d0^-1) J_s. Leading batch axes broadcast
  (a batch-1 source and first frame against a batch of driving frames). Other keys of `driving`
  (the heatmaps) are kept.
  """
  normalized = dict(driving)
  normalized["value"] = source["value"] + (driving["value"] - driving_initial["value"]) * scale
  if all("jacobian" in anchors for anchors in (source, driving, driving_initial)):
    change = jnp.matmul(driving["jacobian"], geometry.inverse_2x2(driving_initial["jacobian"]))
    normalized["jacobian"] = jnp.matmul(change, source["jacobian"])
  return normalized


def normalize_anchors(source: dict, driving: dict, driving_initial: dict, *, relative: bool,
                      adapt_scale: bool) -> dict:
  """The driving anchors the generator is given (FOMM `normalize_kp` with relative Jacobians).

  Anchor dicts hold value (..., K, 2) and jacobian (..., K, 2, 2). Without `relative` the driving
  anchors are used as they are (absolute motion). `adapt_scale` scales relative motion only, so
  it needs `relative` (ValueError otherwise).
  """
  if not relative:
    if adapt_scale:
      raise ValueError("adapt_scale scales relative motion; it needs relative=True")
    return dict(driving)
  scale = adapt_scale_factor(source["value"], driving_initial["value"]) if adapt_scale else 1.0
  return relative_anchors(source, driving, driving_initial, scale)


# ---------------------------------------------------------------------------------------------
# The animator: encode once, generate in fixed-size batches




def _as_float(images: Any) -> jax.Array:
  return jnp.asarray(images, jnp.float32) / 255.0


# Module-level jits with the (hashable) generator as a static argument: every renderer of the same
# model shares one compilation, e.g. the ones training creates at each evaluation.
@functools.partial(jax.jit, static_argnums=0)
def _encode_source(generator, params, source, anchors=None):
  return generator.apply(params, source, anchors, method="encode_source")


@functools.partial(jax.jit, static_argnums=0)
def _detect_anchors(generator, params, images):
  return generator.apply(params, images, method="detect_anchors")


@functools.partial(jax.jit, static_argnums=0)
def _generate(generator, params, encoding, driving, reference, anchors=None):
  if anchors is None:
    anchors = generator.apply(params, driving, method="detect_anchors")
  if reference is not None:
    anchors = relative_anchors(encoding["anchors"], anchors, reference["initial"],
                               reference["scale"])
  # The source encoding has batch 1; every driving frame of the chunk shares it.
  tiled = jax.tree.map(lambda x: jnp.broadcast_to(x, (driving.shape[0],) + x.shape[1:]), encoding)
  return generator.apply(params, tiled, anchors, method="generate")


class InternetRenderer(inference.Renderer):
  """Jitted `encode_source` once per source + batched `generate` per chunk (see `start` for the
  carry)."""

  # The --visualize panels, left to right (the INTERnet paper, Figs. 7-8).
  panel_names = ("source", "driving", "output", "anchors", "motion", "confidence")
  panel_keys = ("source_anchors", "driving_anchors", "composition", "confidence")

  def __init__(self, generator, params: Any, batch_size: int = 8):
    super().__init__(generator.resolution, batch_size)
    self.generator = generator
    # On the device once: host (numpy) parameters would be copied again at every call.
    self.params = jax.device_put(params)
    # With model.motion.anchors = "part_transforms" the anchors come from the annotations.
    self.annotation_keys = networks.annotation_keys(generator.config)

  def encode(self, source: np.ndarray, anchors: dict | None = None) -> Any:
    """source: uint8 (H, W, 3) at the model resolution -> the source encoding (batch 1), with
    the given (batch-1) anchors or detected ones."""
    return _encode_source(self.generator, self.params, _as_float(source)[None], anchors)

  def _given_anchors(self, annotations: dict) -> tuple[dict, dict]:
    """(source anchors (batch 1), driving anchors of every frame) from `annotations=`."""
    stacked = {}
    for key, shape in networks.annotation_shapes(self.generator.config).items():
      source = np.asarray(annotations["source"][key], np.float32)
      if source.shape != shape:
        raise DataError(f"annotation {key!r} is {source.shape}, this model reads {shape} "
                        "(part_transforms: one per model.num_anchors)")
      stacked["source_" + key] = source[None]
      stacked["driving_" + key] = np.stack([np.asarray(frame[key], np.float32)
                                            for frame in annotations["driving"]])
    return networks.given_anchors(self.generator.config, stacked, self.resolution)

  def motion_reference(self, encoding: Any, first_frame: np.ndarray, *, relative: bool,
                       adapt_scale: bool = False) -> dict | None:
    """The anchors of the first driving frame and the adapt-scale factor (computed once on the
    host: scipy's hull), for relative motion; None for absolute."""
    if not relative:
      if adapt_scale:
        raise ValueError("adapt_scale scales relative motion; it needs relative=True")
      return None
    initial = _detect_anchors(self.generator, self.params, _as_float(first_frame)[None])
    initial = {key: initial[key] for key in ("value", "jacobian")}
    scale = (adapt_scale_factor(np.asarray(encoding["anchors"]["value"]),
                                np.asarray(initial["value"])) if adapt_scale else 1.0)
    return {"initial": initial, "scale": jnp.float32(scale)}

  def start(self, source, first_driving, *, relative: bool = False, adapt_scale: bool = False,
            annotations: dict | None = None):
    """The carry: (source encoding, relative-motion reference or None, the driving anchors of
    every frame or None, the index of the next frame)."""
    if not self.annotation_keys:
      encoding = self.encode(source)
      return (encoding, self.motion_reference(encoding, first_driving, relative=relative,
                                              adapt_scale=adapt_scale), None, 0)
    if annotations is None:
      raise ValueError("this model reads its anchors from annotations: pass annotations=")
    if relative:
      raise ValueError("relative motion needs detected anchors; this model reads them from "
                       "annotations")
    source_anchors, driving_anchors = self._given_anchors(annotations)
    return self.encode(source, source_anchors), None, driving_anchors, 0

  def step(self, carry, chunk):
    encoding, reference, given, start = carry
    anchors = None
    if given is not None:  # pad the last chunk by its last frame, as `render_chunk` does
      count = len(given["value"])
      if start >= count:
        raise DataError(f"the driving video has more frames than its {count} annotated ones")
      index = np.minimum(np.arange(start, start + self.batch_size), count - 1)
      anchors = jax.tree.map(lambda x: x[index], given)
    outputs = _generate(self.generator, self.params, encoding, _as_float(chunk), reference,
                        anchors)
    return (encoding, reference, given, start + self.batch_size), outputs

  def panels(self, source: np.ndarray, fetched: dict) -> list[np.ndarray]:
    """source | driving | output | anchors | motion field coloured by anchor | confidence map.

    The anchors panel draws the anchors the generator was given (after relative normalisation) on
    the output; the motion panel colours each pixel by the anchor motion with the largest
    composition weight (black: still background); confidence is grey, white = 1.
    """
    frames = []
    height, width = source.shape[:2]
    for index, (driving, output) in enumerate(zip(fetched["driving"], fetched["prediction"])):
      frames.append(visualize.tile_images([[
          source, driving, output,
          visualize.draw_anchors(output, fetched["driving_anchors"]["value"][index]),
          visualize.motion_by_anchor(fetched["composition"][index], height, width),
          visualize.confidence_to_rgb(fetched["confidence"][index], height, width),
      ]], pad=inference.PANEL_PAD))
    return frames


def create_renderer(nets, params: dict, config, batch_size: int) -> InternetRenderer:
  """`Method.renderer`: params holds {"g": G's parameters}."""
  del config
  return InternetRenderer(nets.generator, params["g"], batch_size)


def summary_images(nets, params: dict, batch: dict[str, np.ndarray], count: int = 4) -> dict:
  """`Method.summary_images`: {"summary": source | driving | output | anchors | motion field
  coloured by anchor | confidence}, one row per example of the first `count`."""
  images = {k: jnp.asarray(v[:count]) for k, v in batch.items()}
  floats = method_lib.to_float_images(images)
  given = networks.given_anchors(nets.generator.config, images, nets.generator.resolution)
  outputs = jax.device_get(jax.jit(nets.generator.apply)(params["g"], floats["source"],
                                                          floats["driving"], anchors=given))
  return {"summary": visualize.training_summary(jax.device_get(images), outputs)}
