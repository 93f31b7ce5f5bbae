"""The synthetic human-motion dataset: a procedural, articulated 2D figure with exact ground truth.

    python -m input_pipeline.synthetic --output_dir=DIR --num_videos=N --num_frames=T
        --resolution=R --seed=S [--num_test_videos=M] [--background=studio|textured|mixed]
        [--format=png|mp4] [--preview] [--nocross_identity] [--person_seed=P]

The figure is a layered "paper doll": head, torso, skirt (or the hips of trousers), upper and lower
arms and legs. Each part is a shape (tapered capsule, ellipse, trapezoid) in its own local
coordinates, textured by a function of those coordinates (garment families stripes, checks, dots,
noise, plaid, plain; skin tones, hair, shoes) and placed in every frame by an affine map from a
kinematic chain (pelvis -> torso -> neck -> head; shoulders -> upper -> lower arm; hips -> upper ->
lower leg) followed by a global map (body sway, in-place steps, a slow turn drawn as a horizontal
squash, foreshortening of limbs as a squash along the bone). Parts are anti-aliased and composited
back to front in a per-frame depth order, so limbs pass in front of and behind the body.

Because appearance is a function of part-local coordinates and every placement is affine, the
motion of each visible surface point is known exactly: for a pixel p owned by part k in frame t, its
position in frame s is `M_{s,k} M_{t,k}^{-1} p`. The background is static: under
--background=studio (the default) a seamless studio backdrop with a slight vertical gradient,
with probability 1/2 near-white (a grey level in [0.95, 0.99] at the top, a per-channel tint of
at most +-0.015) and otherwise pastel paper (hue uniform, HSV saturation in [0.15, 0.4], value in
[0.8, 0.95] at the top); under textured a patterned wall above a plank floor in perspective;
under mixed either kind with probability 1/2.

Coordinates: pixel units, last axis (x, y), pixel (row i, column j) has its centre at (x=j, y=i)
(the align-corners convention of `internet_jax.geometry`: normalised = px * 2 / (size - 1) - 1;
convert pixel flows with `geometry.pixel_to_normalized_flow`).

`render_video` returns, and `<name>.npz` (np.savez_compressed format; np.load(allow_pickle=False))
holds:

  frames          (T, H, W, 3) uint8   RGB frames (only in the dict; on disk they are the video).
  joints          (T, J, 2) float32    pixel (x, y) of the joints named by JOINT_NAMES ("head" is
                                       the centre of the head; the others are the pivots of the
                                       chain, "wrist"/"ankle" the ends of the lower arm/leg bones).
  joint_names     (J,) str             JOINT_NAMES.
  part_names      (P,) str             PART_NAMES; label k >= 1 is part_names[k - 1].
  part_labels     (T, H, W) uint8      0 = background, k = the front-most part covering at least
                                       half of the pixel (anti-aliasing coverage >= 0.5).
  uv              (T, H, W, 2) float16 local texture coordinate of the labelled part, scaled to
                                       [0, 1] over the part's local bounding box: u across the
                                       part, v along it (limbs: from the proximal joint towards
                                       the distal one; head, torso: from top to bottom);
                                       0 on background.
  flow_forward    (T-1, H, W, 2) float32  for each pixel p of frame t, the displacement (px) to
                                       the same surface point in frame t+1 (p + flow is where it
                                       goes); 0 on background (static).
  flow_backward   (T-1, H, W, 2) float32  for each pixel p of frame t+1, the displacement (px) to
                                       the same surface point in frame t.
  valid_forward   (T-1, H, W) bool     True where the surface point at p (frame t) is visible in
                                       both frames: its part owns p in frame t (part_labels) and
                                       owns every pixel of the bilinear footprint of p + flow in
                                       frame t+1, which lies inside the frame. False where it is
                                       occluded or leaves the frame. Background pixels are valid
                                       where background owns p in both frames.
  valid_backward  (T-1, H, W) bool     the same for flow_backward (pixels of frame t+1 -> frame t).
  source_coords   (T, H, W, 2) float32 for each pixel of frame t, the pixel position (x, y) of the
                                       same surface point in frame 0 (the source); the pixel's own
                                       position on background. Frame 0 is the identity.
  source_visible  (T, H, W) bool       as valid_forward, between frame t and frame 0.
  mixed           (T, H, W) bool       True on anti-aliased pixels whose colour blends two
                                       surfaces (part edges); a stricter photometric mask is
                                       valid & ~mixed at p and at the footprint.
  part_transforms (T, P, 2, 3) float32 affine maps part-local -> pixel: [A | b], p = A u + b.
  part_textures   (P,) str             texture family of each part: one of TEXTURE_FAMILIES for
                                       clothed parts, "skin" for bare limbs, "head" for the head.
  background      () str               "studio" or "textured".
  garment         () str               "skirt" or "trousers".
  seed, fps       () int64             the video seed; the nominal frame rate (mp4 rate).

Warping frame t+1 with flow_forward[t] (bilinear) reproduces frame t on valid pixels up to texture
interpolation and the colour blend of anti-aliased edge pixels: about 35-45 dB PSNR over valid
pixels at 256^2 (32-44 dB on the figure alone). Frames written as mp4 are lossy (h264, crf 18);
the ground truth is exact for the PNG frames and for `frames`.

Cross-identity pairs (`render_pair`): a video's partner is the same motion rendered with another
appearance. Each video's randomness is split in two. Motion and shape: the bone lengths and part
dimensions, the garment (skirt or trousers, which changes the silhouettes), the joint-angle
trajectories, sway, steps, turn and depth order, i.e. everything that places the joints and the
parts. Appearance: the garment texture families and palettes, skin tone, hair colour, shoes,
sleeve length, hairline, skirt pleats and the background. The partner keeps the first exactly (its
joints, part_labels, uv, flows, validity, source_coords, mixed and part_transforms are those of
the video) and draws the second from SeedSequence([video seed, int.from_bytes(b"cross", "big")]),
made to differ: each garment another texture family and a base colour at least 0.4 away (RGB in
[0, 1]), a skin tone at least two steps away, another hair colour, and a backdrop at least 0.1 away
in mean absolute difference: under --background=mixed the other kind, otherwise another backdrop
of the video's kind. Every backdrop, the partner's included, is drawn from the one distribution
of its kind (a partner's is drawn again while it is too close), so training, test and partner
videos share one studio and one textured backdrop distribution and a partner never shows a kind
of backdrop that training lacks. (The redraw makes a near-white video's studio partner pastel, so
about 70% of studio partners are pastel against 50% of videos; both kinds are common in
training.) Only the frames, part_textures and background of its ground truth differ from the
video's. For cross-identity animation with source = frame 0 of the partner and driving = the
video, the partner itself is the exact target of every frame, and the shared source_coords /
source_visible say where each target pixel is in the source.

Single-person mode (--person_seed=P, an integer >= 0; default none, also -1: off): every video of
the dataset, training and test, shows one person, as a method trained per person needs (D2G-Net,
"Robust Pose Transfer with Dynamic Details using Neural Video Rendering": one actor, many frames,
evaluated on held-out poses). The video's three streams (figure, motion, backdrop: `_render`
spawns three generators from SeedSequence(seed)) are then spawned from SeedSequence(P) instead,
except the motion, which stays the video seed's: the figure's dimensions and garment, its look
(textures, palettes, skin, hair, shoes, sleeves) and the backdrop (its kind too under
--background=mixed) are those of P; the joint-angle trajectories, sway, steps, turn and depth
order are the video's. The person's camera, the similarity that fits the figure into the frame,
is fixed too: it is fitted to 8 reference motions of 500 frames drawn from P's motion stream
(unused otherwise) with 4% extra margin, not to each video's own motion (which would draw each
video at its own scale), and a textured backdrop's floor follows the feet of those reference
motions. So the training videos
together are one long video of one person in one studio, and the test videos are held-out
motions; a test video's cross-identity partner is still another look at its motion (drawn from
the video seed, made to differ from the person). Without person_seed every video is exactly what
it was before this mode existed.

On disk (`write_dataset`): DIR/train/<name>/0000000.png ... (or DIR/train/<name>.mp4) and
DIR/train/<name>.npz, the same under DIR/test/; with cross_identity (the default;
--nocross_identity turns it off) the partner of every test video under DIR/test_cross/
(CROSS_SPLIT) with the same name and format, DIR/test_cross/<name>/... or <name>.mp4, and its
DIR/test_cross/<name>.npz; the training split has no partners. `cross_identity_video(DIR, name)`
finds a partner (None if absent). DIR/dataset_info.json holds the arguments (cross_identity and
person_seed, null when off, among them), renderer_version (RENDERER_VERSION) and each video's
background kind (video_backgrounds; cross_video_backgrounds for the partners), and
DIR/preview.png with --preview (a sheet of the
first training video, then the frames of the first test video and of its partner). Training
videos are named synth_00000, synth_00001, ...; test videos synth_test_00000, ...; each video's
seed is derived from (seed, split, index) only, so a video does not depend on how many others are
rendered.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm import tqdm

from input_pipeline import annotations
from internet_jax import errors, temporaries
from internet_jax import visualize

PART_NAMES = (
    "head", "torso", "skirt_or_hips",
    "upper_arm_left", "lower_arm_left", "upper_arm_right", "lower_arm_right",
    "upper_leg_left", "lower_leg_left", "upper_leg_right", "lower_leg_right",
)
# "left" is the figure's own left: on the image's right while it faces the camera.
JOINT_NAMES = (
    "head", "neck", "pelvis",
    "shoulder_left", "elbow_left", "wrist_left", "shoulder_right", "elbow_right", "wrist_right",
    "hip_left", "knee_left", "ankle_left", "hip_right", "knee_right", "ankle_right",
)
# For each part (PART_NAMES order), two joints whose midpoint is a point of the part itself: fixed
# in the part's local coordinates, so it moves exactly with the part (an affine map keeps
# midpoints). The middle of each limb's bone, of the torso, the head's centre, the pelvis.
PART_CENTRE_JOINTS = (
    ("head", "head"), ("neck", "pelvis"), ("pelvis", "pelvis"),
    ("shoulder_left", "elbow_left"), ("elbow_left", "wrist_left"),
    ("shoulder_right", "elbow_right"), ("elbow_right", "wrist_right"),
    ("hip_left", "knee_left"), ("knee_left", "ankle_left"),
    ("hip_right", "knee_right"), ("knee_right", "ankle_right"),
)


def part_centres(joints):
  """(..., J, 2) joints in JOINT_NAMES order -> (..., P, 2) the PART_CENTRE_JOINTS midpoints
  (numpy or jax arrays alike)."""
  first = [JOINT_NAMES.index(a) for a, _ in PART_CENTRE_JOINTS]
  second = [JOINT_NAMES.index(b) for _, b in PART_CENTRE_JOINTS]
  return (joints[..., first, :] + joints[..., second, :]) * 0.5
TEXTURE_FAMILIES = ("plain", "stripes", "checks", "dots", "noise", "plaid")
BACKGROUNDS = ("studio", "textured", "mixed")
VIDEO_FORMATS = ("png", "mp4")
FPS = 30
MIN_RESOLUTION = 16
# The folder of the cross-identity partners of the test videos (see the module docstring).
CROSS_SPLIT = "test_cross"
# Which renderer drew a dataset: recorded in dataset_info.json (renderer_version) and part of the
# folder name the synthetic data is rendered into (input_pipeline.datasets.synthetic_key), so
# that a dataset drawn by an older renderer is never read as this one's. Increase it whenever the
# output for the same arguments changes (frames, ground truth, files). 2: the test videos have
# cross-identity partners in test_cross/; dataset_info.json files without renderer_version were
# written before (no partners, or partners before the version was recorded). 3: studio
# backdrops of every video (training included) are pastel with probability 1/2, and studio
# partners draw from that same distribution (version 2: training near-white, partners pastel).
RENDERER_VERSION = 3
# What `<name>.npz` holds: everything render_video returns except the frames.
GT_KEYS = ("joints", "joint_names", "part_names", "part_labels", "uv", "flow_forward",
           "flow_backward", "valid_forward", "valid_backward", "source_coords", "source_visible",
           "mixed", "part_transforms", "part_textures", "background", "garment", "seed", "fps")

_P = len(PART_NAMES)
# A partner's appearance is seeded by SeedSequence([video seed, _CROSS_TAG]).
_CROSS_TAG = int.from_bytes(b"cross", "big")
_PART = {name: index for index, name in enumerate(PART_NAMES)}
_SIDES = (("left", 1.0), ("right", -1.0))  # figure's left is +x in figure space
# Bilinear weights below this do not count as part of a footprint (float noise of conversions).
_FOOTPRINT_EPS = 1e-3
# Texture pattern edges are smoothstep ramps this many pixels wide: sharp (1 px) edges at ~6 px
# periods cost the flow-warping check ~5 dB on the figure (bilinear resampling error), 2 px is
# about a camera's blur.
_EDGE_PX = 2.0


# ---------------------------------------------------------------------------------------------
# Shapes: signed distance (negative inside) in part-local units; u across, v along the part.


class _Capsule:
  """A tapered capsule on the segment u = cu, v in [v0, v1], radius r0 -> r1."""

  def __init__(self, v0, v1, r0, r1, cu=0.0):
    self.v0, self.v1, self.r0, self.r1, self.cu = v0, v1, r0, r1, cu

  def sdf(self, u, v):
    t = np.clip((v - self.v0) / (self.v1 - self.v0), 0.0, 1.0)
    du = u - self.cu
    dv = v - (self.v0 + t * (self.v1 - self.v0))
    return np.sqrt(du * du + dv * dv) - (self.r0 + t * (self.r1 - self.r0))

  def bounds(self):
    r = max(self.r0, self.r1)
    return (self.cu - r, self.cu + r, self.v0 - self.r0, self.v1 + self.r1)


class _Ellipse:
  """An axis-aligned ellipse; first-order distance |p/r| (|p/r| - 1) / |p/r^2| (exact near it)."""

  def __init__(self, cu, cv, ru, rv):
    self.cu, self.cv, self.ru, self.rv = cu, cv, ru, rv

  def sdf(self, u, v):
    du = (u - self.cu) / self.ru
    dv = (v - self.cv) / self.rv
    k0 = np.sqrt(du * du + dv * dv)
    k1 = np.sqrt((du / self.ru) ** 2 + (dv / self.rv) ** 2)
    # k0 / k1 lies between the radii; at the centre (0 / 0) any value in that range will do.
    ratio = np.where(k1 > 1e-12, k0 / np.maximum(k1, 1e-12), min(self.ru, self.rv))
    return (k0 - 1.0) * ratio

  def bounds(self):
    return (self.cu - self.ru, self.cu + self.ru, self.cv - self.rv, self.cv + self.rv)


class _Trapezoid:
  """Symmetric about u = 0: half-width w0 at v0 to w1 at v1 (an intersection of half-planes)."""

  def __init__(self, v0, v1, w0, w1):
    self.v0, self.v1, self.w0, self.w1 = v0, v1, w0, w1
    slope = (w1 - w0) / (v1 - v0)
    self.cos = 1.0 / np.sqrt(1.0 + slope * slope)
    self.slope = slope

  def sdf(self, u, v):
    side = (np.abs(u) - (self.w0 + (v - self.v0) * self.slope)) * self.cos
    cap = np.maximum(self.v0 - v, v - self.v1)
    return np.maximum(side, cap)

  def bounds(self):
    w = max(self.w0, self.w1)
    return (-w, w, self.v0, self.v1)


def _union_sdf(shapes, u, v):
  sdf = shapes[0].sdf(u, v)
  for shape in shapes[1:]:
    sdf = np.minimum(sdf, shape.sdf(u, v))
  return sdf


# ---------------------------------------------------------------------------------------------
# Textures: functions of part-local coordinates, so appearance moves exactly with the part.
# `px` is the length of one pixel in local units: pattern edges are ramps a few pixels wide
# (texture anti-aliasing), which keeps bilinear resampling of the frames close to the true texture.


def _coverage(distance, px):
  """Signed distance (negative inside) -> coverage in [0, 1], a one-pixel ramp (silhouettes)."""
  return np.clip(0.5 - distance / px, 0.0, 1.0)


def _soft_edge(distance, px):
  """Texture edges: a smoothstep ramp _EDGE_PX pixels wide (band-limits patterns, see above)."""
  x = np.clip(0.5 - distance / (_EDGE_PX * px), 0.0, 1.0)
  return x * x * (3.0 - 2.0 * x)


def _stripe(s, period, duty, px):
  """1 on stripes of width duty*period centred on s = k*period, 0 between."""
  f = s / period
  off_centre = np.abs(f - np.round(f))
  return _soft_edge((off_centre - 0.5 * duty) * period, px)


def _mix(a, b, weight):
  return a + (b - a) * weight[:, None]


def _hsv(h, s, v):
  """HSV in [0, 1] -> RGB float32 (3,)."""
  i = int(h * 6.0) % 6
  f = h * 6.0 - np.floor(h * 6.0)
  p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
  rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
  return np.array(rgb, np.float32)


_SKIN_TONES = np.array([(0.98, 0.84, 0.73), (0.93, 0.75, 0.62), (0.84, 0.63, 0.47),
                        (0.72, 0.51, 0.36), (0.55, 0.37, 0.25), (0.38, 0.25, 0.17)], np.float32)
_HAIR_COLOURS = np.array([(0.07, 0.06, 0.06), (0.22, 0.14, 0.08), (0.42, 0.27, 0.14),
                          (0.80, 0.66, 0.40), (0.55, 0.22, 0.10), (0.62, 0.62, 0.60)], np.float32)


def _garment_colours(rng):
  """Two or three contrasting garment colours."""
  hue = rng.uniform()
  base = _hsv(hue, rng.uniform(0.25, 0.85), rng.uniform(0.3, 0.9))
  # The pattern colour differs in brightness or hue enough to be seen (and to give flow texture).
  value2 = rng.uniform(0.85, 1.0) if base.max() < 0.6 else rng.uniform(0.1, 0.35)
  second = _hsv((hue + rng.uniform(0.3, 0.7)) % 1.0, rng.uniform(0.0, 0.8), value2)
  third = _hsv(rng.uniform(), rng.uniform(0.3, 0.9), rng.uniform(0.3, 0.95))
  return base, second, third


def _make_texture(rng, family, colours=None):
  """A garment texture: fn(u, v, px) -> (n, 3) float32 colours.

  `colours`: the (base, second, third) palette; None draws it with _garment_colours(rng) first.
  """
  c1, c2, c3 = _garment_colours(rng) if colours is None else colours
  angle = rng.uniform(0.0, np.pi)
  ca, sa = np.float32(np.cos(angle)), np.float32(np.sin(angle))
  period = np.float32(rng.uniform(0.035, 0.07))  # local units; ~7-15 px at 256^2
  duty = np.float32(rng.uniform(0.3, 0.6))

  def rotated(u, v):
    return ca * u + sa * v, -sa * u + ca * v

  if family == "plain":
    return lambda u, v, px: np.broadcast_to(c1, (u.shape[0], 3))
  if family == "stripes":
    def stripes(u, v, px):
      s, _ = rotated(u, v)
      return _mix(c1, c2, _stripe(s, period, duty, px))
    return stripes
  if family == "checks":
    def checks(u, v, px):
      s, t = rotated(u, v)
      a = _stripe(s, period, 0.5, px)
      b = _stripe(t, period, 0.5, px)
      return _mix(c1, c2, a + b - 2.0 * a * b)  # soft xor
    return checks
  if family == "dots":
    radius = np.float32(period * rng.uniform(0.18, 0.32))
    def dots(u, v, px):
      s, t = rotated(u, v)
      row = np.round(t / period)
      shifted = s / period + 0.5 * np.mod(row, 2.0)  # staggered rows
      du = (shifted - np.round(shifted)) * period
      dv = t - row * period
      return _mix(c1, c2, _soft_edge(np.sqrt(du * du + dv * dv) - radius, px))
    return dots
  if family == "noise":
    count = 6
    wavelength = rng.uniform(0.05, 0.16, count)
    direction = rng.uniform(0.0, 2.0 * np.pi, count)
    kx = (2.0 * np.pi / wavelength * np.cos(direction)).astype(np.float32)
    ky = (2.0 * np.pi / wavelength * np.sin(direction)).astype(np.float32)
    phase = rng.uniform(0.0, 2.0 * np.pi, count).astype(np.float32)
    def noise(u, v, px):
      field = np.zeros(u.shape, np.float32)
      for i in range(count):
        field += np.sin(kx[i] * u + ky[i] * v + phase[i])
      weight = 0.5 + 0.5 * np.tanh(field * 0.8)
      return _mix(_mix(c1, c2, weight), c3, 0.25 * (1.0 - weight))
    return noise
  if family == "plaid":
    period2 = np.float32(period * rng.uniform(1.3, 2.0))
    def plaid(u, v, px):
      s, t = rotated(u, v)
      colour = _mix(c1, c2, 0.6 * _stripe(s, period2, duty, px))
      return _mix(colour, c3, 0.6 * _stripe(t, period2, duty, px))
    return plaid
  raise ValueError(f"unknown texture family {family!r}")


# ---------------------------------------------------------------------------------------------
# The figure: part shapes, dimensions and appearance (figure units: the body is about 1 tall).


class _Part:
  """One body part: shapes (a union), appearance colour(u, v, px) and shading(u, v)."""

  def __init__(self, shapes, colour, shading, family):
    self.shapes = shapes
    self.colour = colour
    self.shading = shading
    self.family = family
    bounds = np.array([s.bounds() for s in shapes])
    self.bounds = (bounds[:, 0].min(), bounds[:, 1].max(), bounds[:, 2].min(), bounds[:, 3].max())


def _limb_shading(capsule, strength):
  """Cylinder-like shading: darker towards the silhouette across the limb."""
  def shade(u, v):
    t = np.clip((v - capsule.v0) / (capsule.v1 - capsule.v0), 0.0, 1.0)
    radius = capsule.r0 + t * (capsule.r1 - capsule.r0)
    across = np.minimum(np.abs(u - capsule.cu) / radius, 1.0)
    return 1.0 - strength * across * across
  return shade


def _constant(colour):
  colour = np.asarray(colour, np.float32)
  return lambda u, v, px: np.broadcast_to(colour, (u.shape[0], 3))


def _banded(inner, outer, boundary):
  """`inner` where v < boundary, `outer` beyond (a soft texture edge): sleeves, cuffs, shoes."""
  def colour(u, v, px):
    return _mix(inner(u, v, px), outer(u, v, px), _soft_edge(boundary - v, px))
  return colour


def _figure_shape(rng):
  """Random dimensions and garment of one figure: (dims, garment).

  These decide the silhouettes of the parts and the skeleton (with the motion); the appearance
  (_draw_look) is drawn after them from the same generator, or for a cross-identity partner from
  another one.
  """
  size = rng.uniform(0.93, 1.05)
  d = dict(
      torso=0.30 * size, shoulder=rng.uniform(0.095, 0.115), waist=rng.uniform(0.07, 0.085),
      head_ru=rng.uniform(0.048, 0.056), head_rv=rng.uniform(0.06, 0.07), neck=0.02,
      upper_arm=0.155 * size, lower_arm=0.145 * size, arm_r=rng.uniform(0.026, 0.033),
      upper_leg=0.22 * size, lower_leg=0.22 * size, leg_r=rng.uniform(0.04, 0.05),
      hip=rng.uniform(0.045, 0.058), skirt_len=rng.uniform(0.16, 0.25),
      skirt_flare=rng.uniform(0.13, 0.2))
  d["head_cv"] = d["neck"] + d["head_rv"] * 0.85
  garment = "skirt" if rng.uniform() < 0.5 else "trousers"
  return d, garment


# A partner's garment base colours lie at least this far (RGB in [0, 1], Euclidean) from the
# original's; its backdrop differs from the original's by at least this mean absolute difference.
_MIN_COLOUR_DISTANCE = 0.4
_MIN_BACKDROP_DIFFERENCE = 0.1
# Draws tried for each of these before the farthest one is kept. A colour draw passes with
# probability about 0.6 or more, so all 32 failing is a chance below 1e-12. A studio backdrop
# draw for a near-white video passes only when it is pastel (probability 1/2) and far enough:
# about 0.42 at worst (measured over 400 videos x 400 draws), so it gets 64 draws (all failing:
# below 1e-15). Studio draws are cheap; textured draws pass far more often (another room).
_MAX_DRAWS = 32
_MAX_BACKDROP_DRAWS = 64


def _farthest_draw(draw, distance, minimum, max_draws=_MAX_DRAWS):
  """The first of up to max_draws draw() with distance >= minimum, else the farthest one."""
  best, best_distance = None, -1.0
  for _ in range(max_draws):
    candidate = draw()
    gap = distance(candidate)
    if gap > best_distance:
      best, best_distance = candidate, gap
    if gap >= minimum:
      break
  return best


def _draw_look(rng, garment, avoid=None):
  """The appearance of a figure: garment textures and palettes, skin, hair, shoes, sleeves.

  With `avoid` (another look), the look is that of a different person: each garment has another
  texture family and a base colour at least _MIN_COLOUR_DISTANCE from the other's, the skin tone
  is at least two steps away on _SKIN_TONES and the hair colour is another one. Without it (a
  video's own look), the draws continue the generator right after _figure_shape.
  """
  if avoid is None:
    families = [str(f) for f in rng.choice(TEXTURE_FAMILIES, size=2)]
  else:
    families = [str(rng.choice([f for f in TEXTURE_FAMILIES if f != other]))
                for other in avoid["families"]]
  palettes, textures = [], []
  for index, family in enumerate(families):
    if avoid is None:
      colours = _garment_colours(rng)
    else:
      base = avoid["palettes"][index][0]
      colours = _farthest_draw(lambda: _garment_colours(rng),
                               lambda c, base=base: float(np.linalg.norm(c[0] - base)),
                               _MIN_COLOUR_DISTANCE)
    palettes.append(colours)
    textures.append(_make_texture(rng, family, colours))
  if avoid is None:
    tone = int(rng.integers(len(_SKIN_TONES)))
  else:
    tone = int(rng.choice([i for i in range(len(_SKIN_TONES)) if abs(i - avoid["tone"]) >= 2]))
  skin = _SKIN_TONES[tone] + rng.uniform(-0.03, 0.03, 3)
  if avoid is None:
    hair = int(rng.integers(len(_HAIR_COLOURS)))
  else:
    hair = int(rng.choice([i for i in range(len(_HAIR_COLOURS)) if i != avoid["hair"]]))
  look = dict(families=families, palettes=palettes, textures=textures, tone=tone,
              skin=np.clip(skin, 0.0, 1.0).astype(np.float32), hair=hair)
  look["shoe"] = _hsv(rng.uniform(), rng.uniform(0.0, 0.6), rng.uniform(0.08, 0.45))
  look["sleeve"] = str(rng.choice(["none", "short", "long"]))
  look["hairline"] = rng.uniform(0.1, 0.45)
  look["pleat"] = rng.uniform(0.03, 0.06) if garment == "skirt" else None
  return look


def _build_parts(d, garment, look):
  """The parts of a figure of dimensions `d` and `garment` dressed in `look` (PART_NAMES order).

  Shapes depend on (d, garment) only, colours and shading on the look.
  """
  top_family, bottom_family = look["families"]
  top, bottom = look["textures"]
  skin = look["skin"]
  hair = _HAIR_COLOURS[look["hair"]]
  shoe = look["shoe"]
  sleeve = look["sleeve"]
  skin_fn = _constant(skin)
  parts = [None] * _P

  # Head: an ellipse with a neck; hair above a curved hairline, two eyes.
  head_shapes = [_Ellipse(0.0, -d["head_cv"], d["head_ru"], d["head_rv"]),
                 _Capsule(0.03, -d["head_cv"], d["neck"], d["neck"])]
  hairline = look["hairline"]
  eye_u, eye_r = 0.38 * d["head_ru"], 0.12 * d["head_ru"]
  eye_v = -d["head_cv"] + 0.05 * d["head_rv"]
  def head_colour(u, v, px):
    rel_u = u / d["head_ru"]
    line = -d["head_cv"] - d["head_rv"] * (hairline - 0.5 * rel_u * rel_u)
    colour = _mix(np.broadcast_to(skin, (u.shape[0], 3)), hair, _soft_edge(v - line, px))
    eyes = np.hypot(np.abs(u) - eye_u, v - eye_v) - eye_r
    return _mix(colour, np.full(3, 0.1, np.float32), _soft_edge(eyes, px))
  def head_shading(u, v):
    r2 = (u / d["head_ru"]) ** 2 + ((v + d["head_cv"]) / d["head_rv"]) ** 2
    return 1.0 - 0.18 * np.minimum(r2, 1.0)
  parts[_PART["head"]] = _Part(head_shapes, head_colour, head_shading, "head")

  # Torso: a trapezoid from the shoulders (v = -torso) to just below the waist (v = 0.02).
  torso_shape = _Trapezoid(-d["torso"], 0.02, d["shoulder"], d["waist"])
  def torso_shading(u, v):
    half = d["shoulder"] + (v + d["torso"]) * torso_shape.slope
    return 1.0 - 0.2 * np.minimum((u / half) ** 2, 1.0)
  parts[_PART["torso"]] = _Part([torso_shape], top, torso_shading, str(top_family))

  # Skirt (a flared trapezoid with pleats) or the hips of the trousers.
  if garment == "skirt":
    hips = _Trapezoid(-0.015, d["skirt_len"], d["waist"] + 0.004, d["skirt_flare"])
    pleat = look["pleat"]
    def hips_shading(u, v):
      return 1.0 - 0.08 * (0.5 + 0.5 * np.cos(2.0 * np.pi * u / pleat)) * np.clip(v / 0.1, 0, 1)
  else:
    hips = _Trapezoid(-0.015, 0.09, d["waist"] + 0.004, d["hip"] + d["leg_r"] * 1.05)
    def hips_shading(u, v):
      del v
      return 1.0 - 0.1 * np.minimum((u / 0.1) ** 2, 1.0)
  parts[_PART["skirt_or_hips"]] = _Part([hips], bottom, hips_shading, str(bottom_family))

  # Arms: sleeves of the top garment over skin, a hand ellipse at the wrist.
  for side, sign in _SIDES:
    upper = _Capsule(0.0, d["upper_arm"], d["arm_r"], d["arm_r"] * 0.82)
    if sleeve == "none":
      upper_colour, upper_family = skin_fn, "skin"
    elif sleeve == "short":
      upper_colour, upper_family = _banded(top, skin_fn, 0.55 * d["upper_arm"]), str(top_family)
    else:
      upper_colour, upper_family = top, str(top_family)
    parts[_PART[f"upper_arm_{side}"]] = _Part([upper], upper_colour, _limb_shading(upper, 0.3),
                                              upper_family)
    lower = _Capsule(0.0, d["lower_arm"], d["arm_r"] * 0.8, d["arm_r"] * 0.62)
    hand = _Ellipse(0.0, d["lower_arm"] + 0.028, d["arm_r"] * 0.8, 0.034)
    if sleeve == "long":
      lower_colour, lower_family = _banded(top, skin_fn, d["lower_arm"] - 0.01), str(top_family)
    else:
      lower_colour, lower_family = skin_fn, "skin"
    parts[_PART[f"lower_arm_{side}"]] = _Part([lower, hand], lower_colour,
                                              _limb_shading(lower, 0.3), lower_family)

  # Legs: skin under a skirt, trousers otherwise; shoes at the feet (pointing slightly outward).
  leg_r = d["leg_r"] * (1.12 if garment == "trousers" else 1.0)
  for side, sign in _SIDES:
    upper = _Capsule(0.0, d["upper_leg"], leg_r, leg_r * 0.8)
    if garment == "trousers":
      leg_colour, leg_family = bottom, str(bottom_family)
    else:
      leg_colour, leg_family = skin_fn, "skin"
    parts[_PART[f"upper_leg_{side}"]] = _Part([upper], leg_colour, _limb_shading(upper, 0.25),
                                              leg_family)
    lower = _Capsule(0.0, d["lower_leg"], leg_r * 0.78, leg_r * 0.55)
    foot = _Ellipse(sign * 0.014, d["lower_leg"] + 0.022, 0.032, 0.022)
    lower_colour = _banded(leg_colour, _constant(shoe), d["lower_leg"] - 0.005)
    parts[_PART[f"lower_leg_{side}"]] = _Part([lower, foot], lower_colour,
                                              _limb_shading(lower, 0.25), leg_family)
  return parts


# ---------------------------------------------------------------------------------------------
# Motion: smooth joint-angle trajectories, composed along the kinematic chain.


def _signal(rng, num_frames, low, high, fmin=0.004, fmax=0.018, count=3):
  """A smooth trajectory in [low, high]: a random convex mix of sinusoids (cycles per frame)."""
  t = np.arange(num_frames, dtype=np.float64)
  freq = rng.uniform(fmin, fmax, count)
  phase = rng.uniform(0.0, 2.0 * np.pi, count)
  weight = rng.dirichlet(np.ones(count))
  s = np.sum(weight[:, None] * np.sin(2.0 * np.pi * freq[:, None] * t + phase[:, None]), axis=0)
  return low + (high - low) * 0.5 * (1.0 + s)


def _chain_link(theta, anchor, stretch=None):
  """(T, 2, 3) affine map local -> figure: rotation by theta, squash along v by stretch, anchor."""
  c, s = np.cos(theta), np.sin(theta)
  linear = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)  # (T, 2, 2)
  if stretch is not None:
    linear = linear * np.stack([np.ones_like(stretch), stretch], -1)[:, None, :]
  return np.concatenate([linear, anchor[:, :, None]], axis=-1)


def _apply(affine, point):
  """Applies (T, 2, 3) affine maps to one local point (2,) -> (T, 2)."""
  return affine[:, :, :2] @ np.asarray(point, np.float64) + affine[:, :, 2]


def _direction_angle(abduction, sign):
  # Local +v points along the bone; the bone direction is (sign sin a, cos a) for abduction a
  # (0: hanging down, pi/2: sideways out, pi: straight up), i.e. a rotation by -sign * a.
  return -sign * abduction


def _build_motion(rng, num_frames, d):
  """Part maps local -> figure space (T, P, 2, 3), depth (T, P), the figure->image squash."""
  T = num_frames
  maps = np.zeros((T, _P, 2, 3))
  z = np.zeros((T, _P))

  # Pelvis: in-place steps, sway and slow drift; the slow turn (yaw) is drawn as a squash in x.
  step_freq = rng.uniform(0.008, 0.02)
  step_phase = rng.uniform(0, 2 * np.pi)
  lift_amp = rng.uniform(0.0, 1.0)
  gait = np.sin(2 * np.pi * step_freq * np.arange(T) + step_phase)
  lift = {"left": lift_amp * np.maximum(gait, 0.0) ** 2,
          "right": lift_amp * np.maximum(-gait, 0.0) ** 2}
  pelvis = np.stack([_signal(rng, T, -0.06, 0.06, 0.002, 0.008)
                     + 0.02 * (lift["right"] - lift["left"]),
                     _signal(rng, T, -0.01, 0.01) - 0.015 * (lift["left"] + lift["right"])], -1)
  yaw_amp = rng.uniform(0.0, 0.75)
  yaw = (yaw_amp * np.sin(2 * np.pi * rng.uniform(0.003, 0.01) * np.arange(T)
                          + rng.uniform(0, 2 * np.pi)))
  squash = np.cos(yaw)

  torso_angle = _signal(rng, T, -0.13, 0.13)
  pelvis_angle = -0.4 * torso_angle + _signal(rng, T, -0.05, 0.05)
  head_angle = torso_angle + _signal(rng, T, -0.2, 0.2)
  skirt_angle = pelvis_angle + _signal(rng, T, -0.06, 0.06, 0.01, 0.03)

  torso = _chain_link(torso_angle, pelvis)
  maps[:, _PART["torso"]] = torso
  z[:, _PART["torso"]] = 0.0
  neck = _apply(torso, (0.0, -d["torso"]))
  maps[:, _PART["head"]] = _chain_link(head_angle, neck)
  z[:, _PART["head"]] = 1.0
  hips_frame = _chain_link(pelvis_angle, pelvis)
  maps[:, _PART["skirt_or_hips"]] = _chain_link(skirt_angle, pelvis)
  z[:, _PART["skirt_or_hips"]] = 0.5

  for side, sign in _SIDES:
    # Arms: shoulder abduction, elbow bend (either way), foreshortening when pointing at the camera.
    upper_abd = _signal(rng, T, rng.uniform(-0.5, 0.15), rng.uniform(1.0, 2.6))
    bend = _signal(rng, T, rng.uniform(-1.6, 0.0), rng.uniform(0.3, 1.8))
    shoulder = _apply(torso, (sign * (d["shoulder"] - 0.014), -d["torso"] + 0.03))
    upper = _chain_link(_direction_angle(upper_abd, sign), shoulder, _signal(rng, T, 0.8, 1.0))
    elbow = _apply(upper, (0.0, d["upper_arm"]))
    lower = _chain_link(_direction_angle(upper_abd + bend, sign), elbow, _signal(rng, T, 0.8, 1.0))
    maps[:, _PART[f"upper_arm_{side}"]] = upper
    maps[:, _PART[f"lower_arm_{side}"]] = lower
    # Depth: the arm on the far side of the turn tends to go behind the body. It may only switch
    # while the upper arm is lifted away from the torso, so limbs do not pop through it.
    wish = (-sign * np.sin(yaw) * 1.5 + _signal(rng, T, -1.0, 1.0)) > 0.0
    front = np.empty(T, bool)
    front[0] = wish[0]
    for t in range(1, T):
      front[t] = wish[t] if upper_abd[t] > 0.7 else front[t - 1]
    offset = 0.01 * sign * np.sign(np.sin(yaw))
    z[:, _PART[f"upper_arm_{side}"]] = np.where(front, 2.0, -0.6) + offset
    z[:, _PART[f"lower_arm_{side}"]] = np.where(front, 2.05, -0.55) + offset

    # Legs: a little abduction and sway; a lifted knee shortens the thigh (it points at us).
    hip = _apply(hips_frame, (sign * d["hip"], 0.045))
    leg_abd = _signal(rng, T, rng.uniform(-0.02, 0.06), rng.uniform(0.1, 0.22)) + 0.12 * lift[side]
    upper_leg = _chain_link(_direction_angle(leg_abd, sign), hip, 1.0 - 0.3 * lift[side])
    knee = _apply(upper_leg, (0.0, d["upper_leg"]))
    lower_abd = leg_abd - 0.3 * lift[side] + _signal(rng, T, -0.05, 0.05)
    lower_leg = _chain_link(_direction_angle(lower_abd, sign), knee, 1.0 - 0.08 * lift[side])
    maps[:, _PART[f"upper_leg_{side}"]] = upper_leg
    maps[:, _PART[f"lower_leg_{side}"]] = lower_leg
    z[:, _PART[f"upper_leg_{side}"]] = -1.1 + 0.01 * sign * np.sign(np.sin(yaw))
    z[:, _PART[f"lower_leg_{side}"]] = -1.15 + 0.01 * sign * np.sign(np.sin(yaw))
  return maps, z, pelvis, squash


def _homogeneous(affine):
  """(..., 2, 3) -> (..., 3, 3)."""
  bottom = np.zeros(affine.shape[:-2] + (1, 3))
  bottom[..., 0, 2] = 1.0
  return np.concatenate([affine, bottom], axis=-2)


def _place(parts, maps, pelvis, squash, resolution):
  """Figure space -> pixels: the turn squash about the pelvis, then a per-video fit into frame.

  Returns (T, P, 3, 3) homogeneous maps part-local -> pixel.
  """
  placed = _turn(maps, pelvis, squash)
  return _fit(parts, placed, resolution) @ placed


def _turn(maps, pelvis, squash):
  """(T, P, 3, 3) maps part-local -> figure space after the turn squash about the pelvis."""
  T = maps.shape[0]
  # Squash x about the pelvis (the slow turn); figure space keeps y down like the image.
  turn = np.zeros((T, 3, 3))
  turn[:, 0, 0] = squash
  turn[:, 1, 1] = 1.0
  turn[:, 2, 2] = 1.0
  turn[:, 0, 2] = pelvis[:, 0] * (1.0 - squash)
  local_to_figure = _homogeneous(maps)  # (T, P, 3, 3)
  return turn[:, None] @ local_to_figure


def _fit(parts, placed, resolution, extra_margin=0.0):
  """The (3, 3) similarity figure space -> pixels that fits `placed` (T, P, 3, 3) into frame,
  the union of the part boxes grown by `extra_margin` of its extent on each side."""
  # A fixed similarity for the whole video maps the union of all part boxes over all frames into
  # the frame with a margin: the figure never leaves the frame and the motion stays smooth.
  corners = []
  for k, part in enumerate(parts):
    u0, u1, v0, v1 = part.bounds
    box = np.array([[u0, v0, 1], [u1, v0, 1], [u0, v1, 1], [u1, v1, 1]], np.float64)
    corners.append(np.einsum("tij,cj->tci", placed[:, k, :2], box).reshape(-1, 2))
  corners = np.concatenate(corners)
  low, high = corners.min(0), corners.max(0)
  if extra_margin:
    low, high = low - extra_margin * (high - low), high + extra_margin * (high - low)
  margin = 0.03 * (resolution - 1) + 1.0
  available = resolution - 1 - 2.0 * margin
  # Nominal size: the body (about 0.96 units tall standing) spans 88% of the frame height.
  scale = min(0.88 * (resolution - 1) / 0.96, available / max(high[0] - low[0], 1e-6),
              available / max(high[1] - low[1], 1e-6))
  centre = 0.5 * (low + high)
  fit = np.eye(3)
  fit[0, 0] = fit[1, 1] = scale
  fit[:2, 2] = 0.5 * (resolution - 1) - scale * centre
  return fit


# ---------------------------------------------------------------------------------------------
# Backgrounds (static: flow 0).


# Studio backdrops: pastel with this probability, near-white otherwise (the module docstring).
# Pastel paper stays light and only tinted, like a studio's coloured seamless paper: HSV
# saturation and value (at the top) in these ranges. At the top its channels spread by
# value * saturation >= 0.12, against <= 0.03 for a near-white backdrop (its tint).
_PASTEL_PROBABILITY = 0.5
_PASTEL_SATURATION = (0.15, 0.4)
_PASTEL_VALUE = (0.8, 0.95)


def _studio_background(rng, resolution):
  """A studio backdrop with a slight vertical gradient: near-white (slightly tinted) or pastel.

  One distribution for every video, its partner included: pastel with probability
  _PASTEL_PROBABILITY (a uniform hue, _PASTEL_SATURATION, _PASTEL_VALUE at the top, 3-8% darker
  at the bottom), otherwise a grey level in [0.95, 0.99] at the top, 0.03-0.08 darker at the
  bottom, plus a per-channel tint in [-0.015, 0.015].
  """
  y = np.linspace(0.0, 1.0, resolution, dtype=np.float32)[:, None, None]
  if rng.uniform() < _PASTEL_PROBABILITY:
    colour = _hsv(rng.uniform(), rng.uniform(*_PASTEL_SATURATION), rng.uniform(*_PASTEL_VALUE))
    column = colour * (1.0 - np.float32(rng.uniform(0.03, 0.08)) * y)
  else:
    top = rng.uniform(0.95, 0.99)
    bottom = top - rng.uniform(0.03, 0.08)
    tint = rng.uniform(-0.015, 0.015, 3)
    column = (top + (bottom - top) * y) + tint.astype(np.float32)
  return np.broadcast_to(np.clip(column, 0, 1), (resolution, resolution, 3)).astype(np.float32)


def _textured_background(rng, resolution, floor_y):
  """A patterned wall above `floor_y` (pixels), a plank floor in perspective below it."""
  y, x = np.mgrid[0:resolution, 0:resolution].astype(np.float32) / max(resolution - 1, 1)
  wall_base = _hsv(rng.uniform(), rng.uniform(0.05, 0.35), rng.uniform(0.6, 0.92))
  wall_alt = np.clip(wall_base * rng.uniform(0.82, 0.93), 0, 1)
  px = 1.0 / max(resolution - 1, 1)
  kind = rng.integers(3)
  period = rng.uniform(0.04, 0.09)
  if kind == 0:  # soft vertical wallpaper stripes
    weight = _stripe(x, period, rng.uniform(0.3, 0.6), px)
  elif kind == 1:  # diamond lattice
    weight = _stripe(x + y, period, 0.15, px) + _stripe(x - y, period, 0.15, px)
    weight = np.clip(weight, 0, 1)
  else:  # mottled plaster
    weight = np.zeros_like(x)
    for _ in range(5):
      k = rng.uniform(8, 30, 2) * rng.choice([-1, 1], 2)
      weight += np.sin(k[0] * x + k[1] * y + rng.uniform(0, 2 * np.pi))
    weight = 0.5 + 0.5 * np.tanh(weight * 0.5)
  wall = wall_base + (wall_alt - wall_base) * weight[..., None]

  wood = _hsv(rng.uniform(0.05, 0.12), rng.uniform(0.3, 0.6), rng.uniform(0.35, 0.7))
  horizon = floor_y / max(resolution - 1, 1)
  depth = np.maximum(y - horizon, 0.0)
  # Planks run left-right; their rows get wider towards the viewer (1 / distance spacing).
  row_coord = np.log1p(depth * 25.0) * 6.0
  seam = _stripe(row_coord, 1.0, 0.08, np.float32(6.0 * 25.0 * px / (1.0 + 25.0 * depth)))
  row = np.floor(row_coord)
  grain = 0.04 * np.sin(x * 90.0 + row * 1.7) + 0.06 * np.sin(row * 12.9898)
  floor = wood * (1.0 + grain)[..., None] * (1.0 - 0.35 * seam)[..., None]
  board = np.abs(y - horizon) < 0.012  # a darker skirting board along the wall
  image = np.where((y >= horizon)[..., None], floor, wall)
  image = np.where(board[..., None], wall_base * 0.55, image)
  return np.clip(image, 0.0, 1.0).astype(np.float32)


def _backdrop(rng, kind, resolution, joints):
  """The static background of a video of `joints` (T, J, 2): kind "studio" or "textured"."""
  if kind == "studio":
    return _studio_background(rng, resolution)
  # The floor's horizon a little above the lowest ankle, so that the figure stands on it.
  floor_y = np.clip(joints[:, [11, 14], 1].max() - 0.1 * resolution, 0.45 * resolution,
                    0.92 * resolution)
  return _textured_background(rng, resolution, floor_y)


# ---------------------------------------------------------------------------------------------
# Rendering and ground truth.


def _is_int(value) -> bool:
  return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_render_args(seed, num_frames, resolution, background, person_seed=None):
  if not _is_int(seed) or seed < 0:
    raise ValueError(f"--seed: must be an integer >= 0, got {seed!r}")
  if person_seed is not None and (not _is_int(person_seed) or person_seed < -1):
    raise ValueError(f"--person_seed: must be an integer >= 0 (-1 or none: off), "
                     f"got {person_seed!r}")
  if not _is_int(num_frames) or num_frames < 2:
    raise ValueError(f"--num_frames: must be an integer >= 2 (flows need two frames), "
                     f"got {num_frames!r}")
  if not _is_int(resolution) or resolution < MIN_RESOLUTION:
    raise ValueError(f"--resolution: must be an integer >= {MIN_RESOLUTION}, got {resolution!r}")
  if background not in BACKGROUNDS:
    raise ValueError(f"--background: must be one of {', '.join(BACKGROUNDS)}, got {background!r}")


def _map_pixels(table, labels, grid_x, grid_y):
  """Applies the affine map of each pixel's label: table (P+1, 3, 3), labels (H, W) -> x, y."""
  coef = [table[:, i, j].astype(np.float32) for i in range(2) for j in range(3)]
  c = [np.take(k, labels) for k in coef]
  qx = c[0] * grid_x + c[1] * grid_y + c[2]
  qy = c[3] * grid_x + c[4] * grid_y + c[5]
  return qx, qy


def _footprint_agrees(qx, qy, source_owner, target_owner):
  """True where every bilinear tap of q in the target frame has the owner p has in the source.

  Owners are part labels; since each part is one affinely moving layer, the same part at q is
  the same surface point, so this is exactly "visible in both frames".
  """
  height, width = target_owner.shape
  inside = (qx >= 0.0) & (qy >= 0.0) & (qx <= width - 1) & (qy <= height - 1)
  x0 = np.floor(qx)
  y0 = np.floor(qy)
  x1 = x0 + ((qx - x0) > _FOOTPRINT_EPS)
  y1 = y0 + ((qy - y0) > _FOOTPRINT_EPS)
  x0 = np.clip(x0, 0, width - 1).astype(np.int32)
  x1 = np.clip(x1, 0, width - 1).astype(np.int32)
  y0 = np.clip(y0, 0, height - 1).astype(np.int32) * width
  y1 = np.clip(y1, 0, height - 1).astype(np.int32) * width
  flat = target_owner.ravel()
  ok = inside
  for index in (y0 + x0, y0 + x1, y1 + x0, y1 + x1):
    ok &= np.take(flat, index) == source_owner
  return ok


def render_video(seed: int, num_frames: int, resolution: int, background: str = "studio",
                 person_seed: int | None = None) -> dict:
  """Renders one video and its ground truth (see the module docstring for every array).

  Args:
    seed: any non-negative integer; the video is a deterministic function of the arguments.
    num_frames: T >= 2.
    resolution: frame height and width in pixels (>= MIN_RESOLUTION).
    background: "studio", "textured" or "mixed" (chosen from the seed).
    person_seed: None (or -1): the person is drawn from `seed`. An integer >= 0: the single-person
      mode of the module docstring; the figure, its clothes, the backdrop and the camera come from
      person_seed and only the motion from seed.
  Returns:
    A dict with `frames` (T, H, W, 3) uint8 and the ground-truth arrays of the module docstring.
    The figure, its clothes and its motion do not depend on the background. The motion
    trajectories do not depend on num_frames either, but the figure's fit into the frame (one
    similarity per video) looks at all frames, so a longer video may be drawn slightly smaller
    (not in the single-person mode, whose camera is the person's).
  """
  return _render(seed, num_frames, resolution, background, with_partner=False,
                 person_seed=person_seed)[0]


def render_pair(seed: int, num_frames: int, resolution: int, background: str = "studio",
                person_seed: int | None = None) -> tuple[dict, dict]:
  """A video and its cross-identity partner: (render_video(...) exactly, partner).

  The partner is the same motion, skeleton and silhouettes with the appearance of another person
  (see "Cross-identity pairs" in the module docstring): every ground-truth array that depends on
  geometry only (joints, part_labels, uv, flows, validity, source_coords, mixed, part_transforms)
  is the same array object as the video's; frames, part_textures and background are its own.
  The arguments are those of render_video; with person_seed the partner's appearance and backdrop
  still come from the video seed (another look at the test motion), made to differ from the
  person's.
  """
  return _render(seed, num_frames, resolution, background, with_partner=True,
                 person_seed=person_seed)


def _streams(seed):
  """The (figure, motion, background) generators of a video seed or a person seed."""
  return tuple(np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(3))


# Single-person mode: the person's camera (the similarity figure space -> pixels) is fitted to
# this many reference motions of this many frames, drawn from the motion stream of the person
# seed (which the person's videos do not otherwise use), with this extra margin on each side
# (a fraction of the reference extent): held-out motions come from the same distribution, so
# they stay in frame but for rare extremes, which the renderer clips like any part that leaves
# the frame (the flows' validity marks them).
_PERSON_REFERENCE_MOTIONS = 8
_PERSON_REFERENCE_FRAMES = 500
_PERSON_EXTRA_MARGIN = 0.04


def _person_camera(rng, parts, dims, resolution):
  """(fit (3, 3), reference joints (N, J, 2) in pixels): the camera of a person (single-person
  mode), the same for all of the person's videos; the joints place a textured backdrop's floor."""
  references = []
  for _ in range(_PERSON_REFERENCE_MOTIONS):
    maps, _, pelvis, squash = _build_motion(rng, _PERSON_REFERENCE_FRAMES, dims)
    references.append(_turn(maps, pelvis, squash))
  placed = np.concatenate(references)
  fit = _fit(parts, placed, resolution, _PERSON_EXTRA_MARGIN)
  return fit, _joints(fit @ placed, dims)


def _joints(placed, dims):
  """(T, J, 2) pixel positions of JOINT_NAMES from the maps part-local -> pixel (T, P, 3, 3)."""
  joint_defs = [("head", (0.0, -dims["head_cv"])), ("torso", (0.0, -dims["torso"])),
                ("torso", (0.0, 0.0))]
  for side, _ in _SIDES:
    joint_defs += [(f"upper_arm_{side}", (0.0, 0.0)), (f"lower_arm_{side}", (0.0, 0.0)),
                   (f"lower_arm_{side}", (0.0, dims["lower_arm"]))]
  for side, _ in _SIDES:
    joint_defs += [(f"upper_leg_{side}", (0.0, 0.0)), (f"lower_leg_{side}", (0.0, 0.0)),
                   (f"lower_leg_{side}", (0.0, dims["lower_leg"]))]
  return np.stack([_apply(placed[:, _PART[name], :2], point) for name, point in joint_defs], 1)


def _cross_generators(seed):
  """The partner's (appearance, background) generators, seeded by (video seed, "cross")."""
  sequence = np.random.SeedSequence([int(seed), _CROSS_TAG])
  return tuple(np.random.default_rng(s) for s in sequence.spawn(2))


def _render(seed, num_frames, resolution, background, with_partner, person_seed=None):
  """(video, partner or None): the geometry is computed once and drawn in each look."""
  _check_render_args(seed, num_frames, resolution, background, person_seed)
  if person_seed == -1:
    person_seed = None
  # Without person_seed every stream comes from the video seed exactly as before the
  # single-person mode existed (same draws, same order, same arithmetic), so videos and datasets
  # rendered without it are bit-identical and RENDERER_VERSION stays.
  figure_rng, motion_rng, background_rng = _streams(seed)
  if person_seed is not None:
    # The person's streams, spawned like a video's: figure (shape, then look), camera reference
    # motions (in a video's motion slot), backdrop. The motion stays the video seed's.
    figure_rng, camera_rng, background_rng = _streams(person_seed)
  dims, garment = _figure_shape(figure_rng)
  look = _draw_look(figure_rng, garment)
  parts = _build_parts(dims, garment, look)
  maps, z, pelvis, squash = _build_motion(motion_rng, num_frames, dims)
  if person_seed is None:
    placed = _place(parts, maps, pelvis, squash, resolution)  # (T, P, 3, 3)
  else:
    camera, camera_joints = _person_camera(camera_rng, parts, dims, resolution)
    placed = camera @ _turn(maps, pelvis, squash)
  T, H, W = num_frames, resolution, resolution

  # Table index = label: 0 is the background (identity), k the part PART_NAMES[k - 1].
  tables = np.concatenate([np.broadcast_to(np.eye(3), (T, 1, 3, 3)), placed], axis=1)
  inverse = np.linalg.inv(tables)

  joints = _joints(placed, dims)
  # The floor of a textured backdrop follows the video's feet, or in the single-person mode the
  # feet of the person's reference motions (one backdrop for all of the person's videos).
  floor_joints = joints if person_seed is None else camera_joints

  kind = background
  if kind == "mixed":
    kind = "studio" if background_rng.uniform() < 0.5 else "textured"
  backdrop = _backdrop(background_rng, kind, resolution, floor_joints)
  # One entry per look drawn: (parts, backdrop, background kind); the first is the video's.
  looks = [(parts, backdrop, kind)]
  if with_partner:
    look_rng, partner_background_rng = _cross_generators(seed)
    partner_parts = _build_parts(dims, garment, _draw_look(look_rng, garment, avoid=look))
    # Under "mixed" the partner has the other kind. Its backdrop comes from the distribution
    # every video's does (a pastel-only partner would be a kind of backdrop training never
    # shows), drawn again while it is too close to the video's (two near-white backdrops would
    # be all but equal).
    partner_kind = {"studio": "textured", "textured": "studio"}[kind] if background == "mixed" \
        else kind
    partner_backdrop = _farthest_draw(
        lambda: _backdrop(partner_background_rng, partner_kind, resolution, floor_joints),
        lambda candidate: float(np.abs(candidate - backdrop).mean()), _MIN_BACKDROP_DIFFERENCE,
        _MAX_BACKDROP_DRAWS)
    looks.append((partner_parts, partner_backdrop, partner_kind))

  frames = [np.empty((T, H, W, 3), np.uint8) for _ in looks]
  labels = np.zeros((T, H, W), np.uint8)
  mixed = np.zeros((T, H, W), bool)  # anti-aliased pixels that blend two surfaces
  uv = np.zeros((T, H, W, 2), np.float16)
  xs = np.arange(W, dtype=np.float32)
  ys = np.arange(H, dtype=np.float32)
  order = np.argsort(z, axis=1, kind="stable")  # back to front
  for t in range(T):
    images = [look_backdrop.copy() for _, look_backdrop, _ in looks]
    for k in order[t]:
      part = parts[k]  # the silhouette (the same in every look)
      forward, backward = tables[t, k + 1], inverse[t, k + 1]
      u0, u1, v0, v1 = part.bounds
      box = forward[:2] @ np.array([[u0, u1, u0, u1], [v0, v0, v1, v1], [1, 1, 1, 1]])
      x_lo, y_lo = np.maximum(np.floor(box.min(1)) - 1, 0).astype(int)
      x_hi, y_hi = np.minimum(np.ceil(box.max(1)) + 2, [W, H]).astype(int)
      if x_lo >= x_hi or y_lo >= y_hi:
        continue
      bx = xs[x_lo:x_hi][None, :]
      by = ys[y_lo:y_hi][:, None]
      b = backward.astype(np.float32)
      u = b[0, 0] * bx + b[0, 1] * by + b[0, 2]
      v = b[1, 0] * bx + b[1, 1] * by + b[1, 2]
      # Pixels per local unit; the anti-aliasing ramp is one pixel wide (exact for similarities).
      scale = np.sqrt(abs(np.linalg.det(forward[:2, :2])))
      alpha = _coverage(_union_sdf(part.shapes, u, v), 1.0 / scale).astype(np.float32)
      covered = alpha > 0.0
      if not covered.any():
        continue
      uc, vc, ac = u[covered], v[covered], alpha[covered]
      window = (slice(y_lo, y_hi), slice(x_lo, x_hi))
      for image, (look_parts, _, _) in zip(images, looks):
        dressed = look_parts[k]
        colour = dressed.colour(uc, vc, np.float32(1.0 / scale)) * dressed.shading(uc, vc)[:, None]
        sub = image[window]
        sub[covered] += (colour - sub[covered]) * ac[:, None]
      # Full coverage hides any blend below; partial coverage makes one.
      mixed[t][window][covered] = ac < 1.0
      owned = alpha >= 0.5
      labels[t][window][owned] = k + 1
      u_lo, u_hi, v_lo, v_hi = part.bounds
      uv[t][window][owned] = np.stack([np.clip((u[owned] - u_lo) / (u_hi - u_lo), 0, 1),
                                       np.clip((v[owned] - v_lo) / (v_hi - v_lo), 0, 1)], -1)
    for look_frames, image in zip(frames, images):
      look_frames[t] = np.round(np.clip(image, 0.0, 1.0) * 255.0)

  grid_x, grid_y = np.meshgrid(xs, ys)
  flow_forward = np.empty((T - 1, H, W, 2), np.float32)
  flow_backward = np.empty((T - 1, H, W, 2), np.float32)
  valid_forward = np.empty((T - 1, H, W), bool)
  valid_backward = np.empty((T - 1, H, W), bool)
  source_coords = np.empty((T, H, W, 2), np.float32)
  source_visible = np.empty((T, H, W), bool)
  for t in range(T):
    if t + 1 < T:
      qx, qy = _map_pixels(tables[t + 1] @ inverse[t], labels[t], grid_x, grid_y)
      flow_forward[t, ..., 0] = qx - grid_x
      flow_forward[t, ..., 1] = qy - grid_y
      valid_forward[t] = _footprint_agrees(qx, qy, labels[t], labels[t + 1])
      qx, qy = _map_pixels(tables[t] @ inverse[t + 1], labels[t + 1], grid_x, grid_y)
      flow_backward[t, ..., 0] = qx - grid_x
      flow_backward[t, ..., 1] = qy - grid_y
      valid_backward[t] = _footprint_agrees(qx, qy, labels[t + 1], labels[t])
    qx, qy = _map_pixels(tables[0] @ inverse[t], labels[t], grid_x, grid_y)
    source_coords[t, ..., 0] = qx
    source_coords[t, ..., 1] = qy
    source_visible[t] = _footprint_agrees(qx, qy, labels[t], labels[0])

  video = {
      "frames": frames[0],
      "joints": joints.astype(np.float32),
      "joint_names": np.array(JOINT_NAMES),
      "part_names": np.array(PART_NAMES),
      "part_labels": labels,
      "uv": uv,
      "flow_forward": flow_forward,
      "flow_backward": flow_backward,
      "valid_forward": valid_forward,
      "valid_backward": valid_backward,
      "source_coords": source_coords,
      "source_visible": source_visible,
      "mixed": mixed,
      "part_transforms": placed[:, :, :2, :].astype(np.float32),
      "part_textures": np.array([part.family for part in parts]),
      "background": np.array(kind),
      "garment": np.array(garment),
      "seed": np.array(int(seed), np.int64),
      "fps": np.array(FPS, np.int64),
  }
  if not with_partner:
    return video, None
  partner_parts, _, partner_kind = looks[1]
  partner = dict(video, frames=frames[1], background=np.array(partner_kind),
                 part_textures=np.array([part.family for part in partner_parts]))
  return video, partner


# ---------------------------------------------------------------------------------------------
# The dataset on disk.

_SPLITS = {"train": 0, "test": 1}


def video_seed(seed: int, split: str, index: int) -> int:
  """The seed of video `index` of `split` ("train" | "test"), a function of these three only."""
  sequence = np.random.SeedSequence([int(seed), _SPLITS[split], int(index)])
  return int(sequence.generate_state(1, np.uint32)[0])


def video_name(split: str, index: int) -> str:
  """synth_00003 (train) or synth_test_00003 (test): unique across the whole dataset."""
  return f"synth_{index:05d}" if split == "train" else f"synth_{split}_{index:05d}"


def _check_dataset_args(num_videos, num_frames, resolution, seed, num_test_videos, background,
                        video_format):
  if not _is_int(num_videos) or num_videos < 1:
    raise ValueError(f"--num_videos: must be an integer >= 1, got {num_videos!r}")
  if not _is_int(num_test_videos) or num_test_videos < 0:
    raise ValueError(f"--num_test_videos: must be an integer >= 0, got {num_test_videos!r}")
  _check_render_args(seed, num_frames, resolution, background)
  if video_format not in VIDEO_FORMATS:
    raise ValueError(f"--format: must be one of {', '.join(VIDEO_FORMATS)}, got {video_format!r}")
  if video_format == "mp4" and resolution % 2:
    raise ValueError(f"--resolution: mp4 (h264 4:2:0) needs an even size, got {resolution}")


@contextlib.contextmanager
def _prepare_output(output_dir, field: str = "--output_dir") -> Iterator[tuple[Path, Path]]:
  """Checks the target and makes the temporary sibling directory (`temporaries.partial_output`:
  removed on the way out unless renamed, and by the next run if this one is killed); yields
  (target, temporary). Errors name `field`, where the folder came from."""
  if not str(output_dir):
    raise ValueError(f"{field}: required")
  target = Path(output_dir).absolute()
  if target.is_file() or (target.exists() and not target.is_dir()):
    raise ValueError(f"{field}: {output_dir} is an existing file")
  if target.is_dir() and any(target.iterdir()):
    raise ValueError(f"{field}: {output_dir} exists and is not empty; remove it or choose "
                     "another directory")
  ancestor = target.parent
  while not ancestor.exists() and ancestor != ancestor.parent:
    ancestor = ancestor.parent
  if not ancestor.is_dir():
    raise ValueError(f"{field}: cannot create {output_dir}: {ancestor} is not a directory")
  try:
    target.parent.mkdir(parents=True, exist_ok=True)
  except OSError as error:
    raise ValueError(f"{field}: cannot create {output_dir}: {error.strerror or error}") \
        from None
  with temporaries.partial_output(target) as temporary:
    try:
      temporary.mkdir()
    except OSError as error:
      raise ValueError(f"{field}: cannot create {output_dir}: {error.strerror or error}") \
          from None
    yield target, temporary


def write_ground_truth(path, video: dict) -> None:
  """Writes the GT_KEYS arrays of a rendered video as a compressed .npz (np.load reads it; the
  per-frame arrays are the video's annotations, input_pipeline/annotations.py)."""
  annotations.write_npz(path, {key: video[key] for key in GT_KEYS})


def _write_frames(directory: Path, name: str, frames: np.ndarray, video_format: str) -> None:
  if video_format == "png":
    folder = directory / name
    folder.mkdir()
    for index, frame in enumerate(frames):
      visualize.save_png(folder / f"{index:07d}.png", frame)
  else:
    from input_pipeline import video_io  # here: PyAV is only needed for mp4
    video_io.write_video(directory / f"{name}.mp4", frames, fps=FPS)


def _preview_columns(video: dict, num_columns: int) -> np.ndarray:
  num_flows = video["flow_forward"].shape[0]
  columns = np.linspace(0, num_flows - 1, min(num_columns, num_flows)).round().astype(int)
  return np.unique(columns)


def _enlarge(image, resolution):
  zoom = max(1, int(np.ceil(128 / resolution)))
  image = visualize.to_uint8_rgb(image)
  return np.repeat(np.repeat(image, zoom, axis=0), zoom, axis=1)


def _preview_rows(video: dict, num_columns: int) -> list[list[np.ndarray]]:
  columns = _preview_columns(video, num_columns)
  size = video["frames"].shape[1]
  flows = video["flow_forward"][columns]
  max_magnitude = float(np.sqrt((flows ** 2).sum(-1)).max())
  return [
      [_enlarge(video["frames"][t], size) for t in columns],
      [_enlarge(visualize.labels_to_rgb(video["part_labels"][t], _P), size) for t in columns],
      [_enlarge(visualize.flow_to_rgb(video["flow_forward"][t], max_magnitude), size)
       for t in columns],
      [_enlarge(video["valid_forward"][t], size) for t in columns],
  ]


def _pair_rows(video: dict, partner: dict, num_columns: int) -> list[list[np.ndarray]]:
  columns = _preview_columns(video, num_columns)
  size = video["frames"].shape[1]
  return [[_enlarge(v["frames"][t], size) for t in columns] for v in (video, partner)]


def preview_sheet(video: dict, num_columns: int = 6, pair: tuple[dict, dict] | None = None
                  ) -> np.ndarray:
  """A contact sheet of one rendered video, uint8 RGB.

  Rows: frames | part labels | forward flow (Middlebury colours, one scale for the row) |
  valid_forward (white valid, black occluded / out of frame / anti-aliased rim); with `pair`
  (a video and its partner, render_pair), two more: that video's frames | its partner's. Small
  resolutions are enlarged (nearest neighbour) to at least 128 pixels for a person to see.
  """
  rows = _preview_rows(video, num_columns)
  if pair is not None:
    rows += _pair_rows(*pair, num_columns)
  return visualize.tile_images(rows, pad=2, pad_value=255)


def cross_identity_video(manual_dir, name: str) -> Path | None:
  """The cross-identity partner of test video `name` of the dataset in `manual_dir`.

  Returns manual_dir/CROSS_SPLIT/<name> (a folder of PNG frames) or .../<name>.mp4, whichever
  exists, else None (e.g. a dataset written with cross_identity=False).
  Its ground truth is the .npz beside it: `path.with_suffix(".npz")` for the mp4,
  `path.parent / f"{name}.npz"` for the folder.
  """
  cross_dir = Path(manual_dir) / CROSS_SPLIT
  folder = cross_dir / name
  if folder.is_dir():
    return folder
  video = cross_dir / f"{name}.mp4"
  return video if video.is_file() else None


def write_dataset(output_dir, *, num_videos, num_frames, resolution, seed, num_test_videos=None,
                  background="studio", video_format="png", preview=False,
                  cross_identity=True, person_seed=None, field="--output_dir") -> None:
  """Renders the dataset into output_dir (train/, test/, test_cross/, dataset_info.json[,
  preview.png]).

  cross_identity: also writes the partner of every test video into CROSS_SPLIT (render_pair).
  person_seed: None (or -1): off; an integer >= 0: every video shows that one person (the
  single-person mode of the module docstring).
  All arguments are checked before anything is written; the dataset is written into a hidden
  temporary directory beside output_dir and renamed at the end, so output_dir is either complete
  or absent (a run killed with SIGKILL leaves its temporary directory to the next run for the
  same output_dir, which removes it). output_dir must not exist, or be an empty directory. Raises
  ValueError with a one-line message naming the argument on bad input (output_dir's as `field`,
  where the caller got it from).
  """
  if num_test_videos is None:
    num_test_videos = max(1, round(0.1 * num_videos)) if _is_int(num_videos) else num_videos
  _check_dataset_args(num_videos, num_frames, resolution, seed, num_test_videos, background,
                      video_format)
  _check_render_args(seed, num_frames, resolution, background, person_seed)
  if person_seed == -1:
    person_seed = None
  if not isinstance(cross_identity, (bool, np.bool_)):
    raise ValueError(f"--cross_identity: must be True or False, got {cross_identity!r}")
  cross_identity = bool(cross_identity)
  with _prepare_output(output_dir, field) as (target, temporary):
    counts = {"train": num_videos, "test": num_test_videos}
    names = {split: [video_name(split, i) for i in range(count)] for split, count in counts.items()}
    backgrounds, cross_backgrounds = {}, {}
    preview_rows = None
    if cross_identity:
      (temporary / CROSS_SPLIT).mkdir()
    with tqdm(total=num_videos + num_test_videos, desc="synthetic videos", unit="video",
              file=sys.stderr, disable=None) as progress:  # None: no bar in non-TTY logs
      for split, count in counts.items():
        split_dir = temporary / split
        split_dir.mkdir()
        for index in range(count):
          name = names[split][index]
          args = (video_seed(seed, split, index), num_frames, resolution, background)
          if split == "test" and cross_identity:
            video, partner = render_pair(*args, person_seed=person_seed)
            _write_frames(temporary / CROSS_SPLIT, name, partner["frames"], video_format)
            write_ground_truth(temporary / CROSS_SPLIT / f"{name}.npz", partner)
            cross_backgrounds[name] = str(partner["background"])
            if preview_rows is not None and index == 0:
              preview_rows += _pair_rows(video, partner, 6)
            del partner
          else:
            video = render_video(*args, person_seed=person_seed)
          _write_frames(split_dir, name, video["frames"], video_format)
          write_ground_truth(split_dir / f"{name}.npz", video)
          backgrounds[name] = str(video["background"])
          if preview and split == "train" and index == 0:
            preview_rows = _preview_rows(video, 6)
          del video
          progress.update(1)
    if preview_rows is not None:
      visualize.save_png(temporary / "preview.png",
                         visualize.tile_images(preview_rows, pad=2, pad_value=255))
    info = dict(generator="input_pipeline.synthetic", renderer_version=RENDERER_VERSION,
                num_videos=num_videos, num_test_videos=num_test_videos, num_frames=num_frames,
                resolution=resolution, seed=seed, background=background, format=video_format,
                cross_identity=cross_identity, person_seed=person_seed, fps=FPS,
                part_names=list(PART_NAMES), joint_names=list(JOINT_NAMES), videos=names,
                video_backgrounds=backgrounds)
    if cross_identity:
      info.update(cross_split=CROSS_SPLIT, cross_video_backgrounds=cross_backgrounds)
    (temporary / "dataset_info.json").write_text(json.dumps(info, indent=1) + "\n")
    if target.is_dir():
      target.rmdir()  # an empty directory was allowed; rename needs the name free
    os.rename(temporary, target)


# ---------------------------------------------------------------------------------------------
# Command line. Flags are defined only when this module runs as a script: importing it (from the
# training entry point, which has flags of its own) must not register any.


def _define_flags():
  from absl import flags
  flags.DEFINE_string("output_dir", None, "Where to write train/ and test/ (new or empty).")
  flags.DEFINE_integer("num_videos", 40, "Number of training videos.")
  flags.DEFINE_integer("num_frames", 96, "Frames per video (>= 2).")
  flags.DEFINE_integer("resolution", 256, "Frame height and width in pixels.")
  flags.DEFINE_integer("seed", 0, "Dataset seed; video i's seed depends only on (seed, split, i).")
  flags.DEFINE_integer("num_test_videos", None, "Test videos (default max(1, round(0.1 N))).")
  flags.DEFINE_string("background", "studio", "studio | textured | mixed (random per video).")
  flags.DEFINE_string("format", "png", "png (folders of 0000000.png frames) | mp4 (h264, lossy).")
  flags.DEFINE_bool("preview", False, "Also write DIR/preview.png, a contact sheet of one video.")
  flags.DEFINE_bool("cross_identity", True, "Also write test_cross/: each test video's motion "
                    "with another appearance (--nocross_identity: none).")
  flags.DEFINE_integer("person_seed", None, "Single-person mode: every video shows the person of "
                       "this seed (>= 0) with its own motion (default none, or -1: off).")
  flags.DEFINE_bool("verbose", False, "Show full tracebacks for errors.")
  return flags.FLAGS


def main(argv):
  from absl import flags  # pylint: disable=g-import-not-at-top
  from internet_jax import cli  # pylint: disable=g-import-not-at-top
  del argv  # stray words are refused by errors.flags_parser
  f = flags.FLAGS
  cli.console_policy(f.verbose)
  # A full disk while writing, say, is one line naming the output folder.
  with errors.user_errors(verbose=f.verbose), errors.writing_to(f.output_dir or ""), \
      temporaries.stop_on_signals(f"the dataset {f.output_dir}"):
    write_dataset(f.output_dir or "", num_videos=f.num_videos, num_frames=f.num_frames,
                  resolution=f.resolution, seed=f.seed, num_test_videos=f.num_test_videos,
                  background=f.background, video_format=f.format, preview=f.preview,
                  cross_identity=f.cross_identity, person_seed=f.person_seed)
  print(f"wrote {f.output_dir}", file=sys.stderr)


def run() -> None:
  """The `internet-jax-synthetic` console script."""
  from absl import app  # pylint: disable=g-import-not-at-top
  _define_flags()
  app.run(main, flags_parser=errors.flags_parser())


if __name__ == "__main__":
  run()
