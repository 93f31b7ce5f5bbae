"""input_pipeline/annotate.py: OpenPose/DensePose/mask/flow inputs of a real video -> frames at the
dataset's resolution and the annotation .npz, checked against values known from construction."""
import json
import os
from pathlib import Path
import subprocess
import sys

import cv2
import numpy as np
import pytest

from input_pipeline import annotate
from input_pipeline import annotations
from input_pipeline import video_io
from input_pipeline.video_io import DataError

REPO = Path(__file__).resolve().parents[1]


# --- Helpers: inputs written the way the tools write them -----------------------------------------


def _keypoints(joints: dict[int, tuple[float, float, float]]) -> list[float]:
  """75 numbers of BODY_25, (0, 0, 0) for joints not given (OpenPose's missing joint)."""
  values = [0.0] * 75
  for index, (x, y, c) in joints.items():
    values[3 * index:3 * index + 3] = [x, y, c]
  return values


def _write_json(folder: Path, prefix: str, index: int, people: list[list[float]]) -> Path:
  folder.mkdir(parents=True, exist_ok=True)
  path = folder / f"{prefix}_{index:012d}_keypoints.json"
  path.write_text(json.dumps({"version": 1.3, "people": [
      {"person_id": [-1], "pose_keypoints_2d": keypoints} for keypoints in people]}))
  return path


def _write_iuv(path: Path, labels: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
  """As DensePose's infer_simple does: cv2.imwrite of the uint8 array [I, U*255, V*255]."""
  assert cv2.imwrite(str(path), np.stack([labels, u, v], axis=-1).astype(np.uint8))


def _texture(height, width, seed=0):
  """Smooth random grey texture (blurred noise), uint8 RGB."""
  rng = np.random.default_rng(seed)
  noise = cv2.GaussianBlur(rng.random((height, width), dtype=np.float32), (0, 0), 1.5)
  noise = (noise - noise.min()) / (noise.max() - noise.min())
  return np.repeat(np.rint(255 * noise).astype(np.uint8)[..., None], 3, axis=-1)


def _frame_folder(folder: Path, frames) -> Path:
  folder.mkdir(parents=True)
  for t, frame in enumerate(frames):
    assert cv2.imwrite(str(folder / f"frame{t}.png"), frame[..., ::-1])
  return folder


def _listing(folder: Path) -> list[str]:
  return sorted(p.name for p in folder.iterdir())


# --- Geometry -------------------------------------------------------------------------------------


@pytest.mark.parametrize("height,width,resolution",
                         [(90, 60, 64), (30, 20, 64), (61, 97, 40), (32, 32, 32), (5, 200, 16)])
def test_fit_geometry_is_where_resize_and_pad_puts_the_frame(height, width, resolution):
  black = np.zeros((height, width, 3), np.uint8)
  out = video_io.resize_and_pad(black, resolution)
  rows, cols = np.nonzero(out[..., 0] < 255)
  new_h, new_w, top, left = video_io.fit_geometry(height, width, resolution)
  assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (
      top, top + new_h, left, left + new_w)


@pytest.mark.parametrize("height,width,resolution", [(90, 60, 64), (30, 20, 64), (61, 97, 40)])
def test_joints_land_where_resize_and_pad_moves_a_dot(height, width, resolution):
  # A dark Gaussian dot on white at a sub-pixel joint position; after resize_and_pad the dot's
  # darkness-weighted centroid is where the joint must be mapped.
  x0, y0 = width * 0.37 + 0.3, height * 0.61 + 0.2
  ys, xs = np.mgrid[:height, :width]
  sigma = max(height, width) / 25
  dot = np.exp(-((xs - x0) ** 2 + (ys - y0) ** 2) / (2 * sigma ** 2))
  frame = np.repeat(np.rint(255 - 200 * dot).astype(np.uint8)[..., None], 3, axis=-1)
  darkness = 255.0 - video_io.resize_and_pad(frame, resolution)[..., 0]
  ys, xs = np.mgrid[:resolution, :resolution]
  centroid = np.array([(darkness * xs).sum(), (darkness * ys).sum()]) / darkness.sum()
  joints = np.array([[x0, y0], [3.0, 4.0]], np.float32)
  mapped = annotate.map_joints(joints, np.array([True, False]), frame.shape, resolution)
  assert mapped.dtype == np.float32
  np.testing.assert_allclose(mapped[0], centroid, atol=0.05)
  np.testing.assert_array_equal(mapped[1], [0.0, 0.0])  # an invalid joint is (0, 0)


# --- OpenPose -------------------------------------------------------------------------------------


def test_openpose_frame_takes_the_more_confident_person_and_thresholds(tmp_path):
  faint = _keypoints({i: (100.0 + i, 50.0, 0.2) for i in range(25)})  # sum 5.0
  sure = _keypoints({0: (10.0, 20.0, 0.9), 1: (11.0, 21.0, 0.06), 2: (12.0, 22.0, 0.05),
                     3: (13.0, 23.0, 0.04)})  # sum 1.05: fewer joints, lower total
  strong = _keypoints({i: (float(i), 2.0 * i, 0.3) for i in range(24)})  # sum 7.2, joint 24 0
  path = _write_json(tmp_path, "clip", 0, [faint, strong, sure])
  joints, valid = annotate.read_openpose_frame(path, threshold=0.05)
  assert joints.shape == (25, 2) and joints.dtype == np.float32 and valid.dtype == np.bool_
  assert valid[:24].all() and not valid[24]  # the (0, 0, 0) joint is invalid
  np.testing.assert_array_equal(joints[:24], [[i, 2 * i] for i in range(24)])
  np.testing.assert_array_equal(joints[24], [0, 0])

  path = _write_json(tmp_path, "clip", 1, [sure])
  joints, valid = annotate.read_openpose_frame(path, threshold=0.05)
  # c > threshold: 0.9 and 0.06 are valid, 0.05 and 0.04 are not.
  np.testing.assert_array_equal(np.nonzero(valid)[0], [0, 1])
  np.testing.assert_array_equal(joints[:4], [[10, 20], [11, 21], [0, 0], [0, 0]])


def test_openpose_frame_without_people_has_no_valid_joint(tmp_path):
  joints, valid = annotate.read_openpose_frame(_write_json(tmp_path, "clip", 0, []))
  assert not valid.any() and valid.shape == (25,)
  np.testing.assert_array_equal(joints, np.zeros((25, 2)))


def test_openpose_frames_are_matched_by_the_index_in_their_names(tmp_path):
  # By name the files sort 1, 3, 0, 2 (and an unrelated file sits among them); by index 0..3.
  folder = tmp_path / "pose"
  for index, prefix in ((1, "a"), (3, "b"), (0, "c"), (2, "c")):
    _write_json(folder, prefix, index, [_keypoints({0: (10.0 * index, 1.0, 0.5)})])
  (folder / "c_000000000000_rendered.png").write_bytes(b"")
  joints, valid = annotate.read_openpose(folder)
  assert joints.shape == (4, 25, 2) and valid.shape == (4, 25)
  np.testing.assert_array_equal(joints[:, 0, 0], [0.0, 10.0, 20.0, 30.0])
  assert valid[:, 0].all() and not valid[:, 1:].any()


def test_bad_openpose_files_are_one_line_errors_naming_the_file(tmp_path):
  folder = tmp_path / "pose"
  good = [_keypoints({0: (1.0, 2.0, 0.5)})]
  for index in (0, 1, 3):
    _write_json(folder, "clip", index, good)
  with pytest.raises(DataError, match=r"clip_000000000002_keypoints\.json: missing \(the "
                                      r"keypoints of frame 2\)") as info:
    annotate.read_openpose(folder)
  assert "\n" not in str(info.value) and str(folder) in str(info.value)
  with pytest.raises(DataError, match=r"clip_000000000003_keypoints\.json: keypoints of frame 3, "
                                      r"the video has 2 frames"):
    annotate.read_openpose(folder, num_frames=2)

  cases = {
      "not json {": "not a JSON file",
      json.dumps({"people": [{"pose_keypoints_2d": [1.0] * 74}]}): "not a multiple of 3",
      json.dumps({"people": [{"pose_keypoints_2d": [1.0] * 72}]}): "24 joints, expected BODY_25",
      json.dumps({"people": [{"pose_keypoints_2d": ["x"] * 75}]}): "other than numbers",
      json.dumps({"persons": []}): "no \"people\" list",
  }
  for text, message in cases.items():
    path = folder / "clip_000000000002_keypoints.json"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as info:
      annotate.read_openpose(folder)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)
  (folder / "other_000000000002_keypoints.json").write_text(json.dumps({"people": []}))
  with pytest.raises(DataError, match="frame 2 again"):
    annotate.read_openpose(folder)
  (folder / "clip_7_keypoints.json").write_text("{}")
  with pytest.raises(DataError, match="12-digit frame index"):
    annotate.read_openpose(folder)
  (tmp_path / "empty").mkdir()
  with pytest.raises(DataError, match="no OpenPose"):
    annotate.read_openpose(tmp_path / "empty")


# --- DensePose and masks --------------------------------------------------------------------------


def test_iuv_is_read_exactly_at_the_native_size(tmp_path):
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 25, (16, 10)).astype(np.uint8)
  u = rng.integers(0, 256, (16, 10)).astype(np.uint8)
  v = rng.integers(0, 256, (16, 10)).astype(np.uint8)
  _write_iuv(tmp_path / "f_IUV.png", labels, u, v)
  # 16 x 10 at R = 16: no resampling, 3 columns of padding on the left and 3 on the right.
  part_labels, uv = annotate.read_iuv(tmp_path / "f_IUV.png", (16, 10), 16)
  assert part_labels.dtype == np.uint8 and uv.dtype == np.float32
  assert part_labels.shape == (16, 16) and uv.shape == (16, 16, 2)
  np.testing.assert_array_equal(part_labels[:, 3:13], labels)
  assert not part_labels[:, :3].any() and not part_labels[:, 13:].any()
  person = labels > 0
  expected = np.stack([u, v], axis=-1).astype(np.float32) / 255.0 * person[..., None]
  np.testing.assert_allclose(uv[:, 3:13], expected, rtol=1e-6)
  assert not uv[:, :3].any() and not uv[:, 13:].any()


def _blocks(height, width, block):
  """Labels constant on block x block squares, different for neighbouring squares."""
  rows, cols = np.mgrid[:height, :width] // block
  return ((rows * 7 + cols * 3) % 24 + 1).astype(np.uint8)


def test_iuv_is_resized_by_nearest_neighbour_like_the_frame(tmp_path):
  # Shrinking 40 x 20 to R = 20 halves it: each 2 x 2 block becomes one pixel of its label,
  # placed at columns 5..14 (the frame's own new size and offsets).
  labels = _blocks(40, 20, 2)
  _write_iuv(tmp_path / "a.png", labels, labels * 10, labels * 5)
  part_labels, uv = annotate.read_iuv(tmp_path / "a.png", (40, 20, 3), 20)
  np.testing.assert_array_equal(part_labels[:, 5:15], labels[::2, ::2])
  assert not part_labels[:, :5].any() and not part_labels[:, 15:].any()
  np.testing.assert_allclose(uv[:, 5:15, 0], labels[::2, ::2] * 10 / 255.0, rtol=1e-6)
  # Enlarging 10 x 6 to R = 20 doubles it: each pixel becomes a 2 x 2 block, columns 4..15.
  labels = _blocks(10, 6, 1)
  _write_iuv(tmp_path / "b.png", labels, labels, labels)
  part_labels, _ = annotate.read_iuv(tmp_path / "b.png", (10, 6), 20)
  np.testing.assert_array_equal(part_labels[:, 4:16], np.kron(labels, np.ones((2, 2), np.uint8)))
  assert not part_labels[:, :4].any() and not part_labels[:, 16:].any()
  # Shrinking 30 x 15 to R = 10 by 3: output pixel centre j lies on source pixel centre
  # (j + 0.5) * 3 - 0.5 = 3j + 1, the middle of its 3-pixel block (columns labelled 1..15).
  labels = np.tile(np.arange(1, 16, dtype=np.uint8), (30, 1))
  _write_iuv(tmp_path / "c.png", labels, labels, labels)
  part_labels, _ = annotate.read_iuv(tmp_path / "c.png", (30, 15), 10)
  np.testing.assert_array_equal(part_labels[:, 2:7], np.tile([2, 5, 8, 11, 14], (10, 1)))
  assert not part_labels[:, :2].any() and not part_labels[:, 7:].any()


def test_resize_nearest_and_pad_keeps_a_single_channel_axis():
  out = annotate.resize_nearest_and_pad(np.ones((6, 4, 1), np.uint8), 3)
  assert out.shape == (3, 3, 1) and out[:, :2].all() and not out[:, 2].any()  # 3 x 2 at left 0


def test_bad_iuv_images_are_errors_naming_the_file(tmp_path):
  zeros = np.zeros((12, 8), np.uint8)
  _write_iuv(tmp_path / "small.png", zeros, zeros, zeros)
  with pytest.raises(DataError, match=r"small\.png: the IUV image is 8x12, the video's frame 3 is "
                                      r"10x12"):
    annotate.read_iuv(tmp_path / "small.png", (12, 10), 16, frame=3)
  _write_iuv(tmp_path / "label.png", zeros + 25, zeros, zeros)
  with pytest.raises(DataError, match=r"label\.png: part label 25"):
    annotate.read_iuv(tmp_path / "label.png", (12, 8), 16)
  assert cv2.imwrite(str(tmp_path / "grey.png"), zeros)
  with pytest.raises(DataError, match=r"grey\.png: an IUV image is 8-bit with 3 channels"):
    annotate.read_iuv(tmp_path / "grey.png", (12, 8), 16)
  (tmp_path / "broken.png").write_bytes(b"not a png")
  with pytest.raises(DataError, match=r"broken\.png: not a readable image"):
    annotate.read_iuv(tmp_path / "broken.png", (12, 8), 16)


def test_mask_is_grey_at_least_128_padded_with_false(tmp_path):
  grey = np.array([[0, 127, 128, 255]] * 2, np.uint8)  # 2 x 4
  assert cv2.imwrite(str(tmp_path / "m.png"), grey)
  mask = annotate.read_mask(tmp_path / "m.png", (2, 4), 4)  # rows 1..2 of 4
  assert mask.dtype == np.bool_ and mask.shape == (4, 4)
  np.testing.assert_array_equal(mask[1:3], [[False, False, True, True]] * 2)
  assert not mask[0].any() and not mask[3].any()
  with pytest.raises(DataError, match=r"m\.png: the mask is 4x2"):
    annotate.read_mask(tmp_path / "m.png", (3, 4), 4)


def test_per_frame_pngs_sort_naturally_and_prefer_iuv_names(tmp_path):
  for name in ("f10_IUV.png", "f2_IUV.png", "f2_INDS.png", "f10_INDS.png", ".hidden_IUV.png"):
    (tmp_path / name).write_bytes(b"")
  assert [p.name for p in annotate.frame_files(tmp_path, "--densepose_dir", "_IUV.png")] == [
      "f2_IUV.png", "f10_IUV.png"]
  assert [p.name for p in annotate.frame_files(tmp_path, "--mask_dir")] == [
      "f2_INDS.png", "f2_IUV.png", "f10_INDS.png", "f10_IUV.png"]


# --- Warps into a reference frame -----------------------------------------------------------------


def _write_flo(path: Path, displacement: np.ndarray) -> Path:
  """Middlebury's layout, written byte by byte: the float tag 202021.25 ("PIEH"), int32 width
  and height, then (u, v) row by row, all little-endian."""
  height, width = displacement.shape[:2]
  path.write_bytes(b"PIEH" + np.array([width, height], "<i4").tobytes()
                   + np.asarray(displacement, "<f4").tobytes())
  return path


def test_flo_tag_is_the_bytes_pieh():
  assert np.frombuffer(b"PIEH", "<f4")[0] == annotate.FLO_TAG


def test_warp_at_the_native_size_adds_the_displacement_and_marks_unknowns(tmp_path):
  rng = np.random.default_rng(0)
  displacement = rng.uniform(-5, 5, (6, 7, 2)).astype(np.float32)
  displacement[1, 2] = np.nan
  displacement[4, 5] = [2e9, 0.0]  # beyond UNKNOWN_FLOW_THRESH
  ys, xs = np.mgrid[0:6, 0:7]
  pixels = np.stack([xs, ys], -1).astype(np.float32)
  for path in (_write_flo(tmp_path / "w.flo", displacement), tmp_path / "w.npy"):
    if path.suffix == ".npy":
      np.save(path, displacement.astype(np.float64))
    # A 7 x 6 frame padded to 7 x 7: one row of padding, which has no warp.
    coords, visible = annotate.read_warp(path, (6, 7), 7)
    new_h, new_w, top, left = video_io.fit_geometry(6, 7, 7)
    assert (new_h, new_w, left) == (6, 7, 0)
    inside = np.zeros((7, 7), bool)
    inside[top:top + 6] = True
    known = np.isfinite(displacement).all(-1) & (np.abs(displacement) < 1e9).all(-1)
    np.testing.assert_array_equal(visible[top:top + 6], known)
    assert not visible[~inside].any()
    np.testing.assert_allclose(coords[top:top + 6][known],
                               (pixels + displacement + [0, top])[known], atol=1e-5)
    # Unknown and padding pixels keep their own position.
    ys7, xs7 = np.mgrid[0:7, 0:7]
    own = np.stack([xs7, ys7], -1)
    np.testing.assert_array_equal(coords[~visible], own[~visible])


def test_warp_displacement_is_rescaled_with_the_frame(tmp_path):
  """40 x 48 -> 32^2: the frame is 27 x 32 at rows 2..28 (as the joints test above), so a
  constant displacement (6, -4) native px is (6 * 32/48, -4 * 27/40) resized px everywhere."""
  displacement = np.broadcast_to(np.array([6.0, -4.0], np.float32), (40, 48, 2))
  coords, visible = annotate.read_warp(_write_flo(tmp_path / "w.flo", displacement),
                                       (40, 48), 32)
  assert visible[2:29].all() and not visible[:2].any() and not visible[29:].any()
  ys, xs = np.mgrid[0:32, 0:32]
  moved = coords - np.stack([xs, ys], -1)
  np.testing.assert_allclose(moved[2:29], np.broadcast_to([4.0, -2.7], (27, 32, 2)), atol=1e-5)


def test_bad_warp_files_are_errors_naming_the_file(tmp_path):
  good = np.zeros((4, 5, 2), np.float32)
  cases = {
      "tag.flo": (b"XXXX" + np.array([5, 4], "<i4").tobytes() + good.tobytes(), "not a Middlebury"),
      "short.flo": (b"PIEH" + np.array([5, 4], "<i4").tobytes() + good.tobytes()[:-4],
                    "168 bytes, a 5x4 .flo file has 172"),
      "size.flo": (b"PIEH" + np.array([4, 5], "<i4").tobytes() + good.tobytes(),
                   "the warp is 4x5, the video's frame is 5x4"),
  }
  for name, (data, message) in cases.items():
    (tmp_path / name).write_bytes(data)
    with pytest.raises(DataError, match=rf"^{tmp_path / name}: .*{message}"):
      annotate.read_warp(tmp_path / name, (4, 5), 8)
  np.save(tmp_path / "shape.npy", np.zeros((4, 5, 3), np.float32))
  with pytest.raises(DataError, match=rf"^{tmp_path / 'shape.npy'}: a warp is an \(H, W, 2\)"):
    annotate.read_warp(tmp_path / "shape.npy", (4, 5), 8)
  (tmp_path / "text.npy").write_text("not an array")
  with pytest.raises(DataError, match=rf"^{tmp_path / 'text.npy'}: not a .npy array"):
    annotate.read_warp(tmp_path / "text.npy", (4, 5), 8)


def test_cli_writes_source_coords_from_a_warp_folder(tmp_path):
  frames = [_texture(16, 16, seed=t) for t in range(3)]
  video = _frame_folder(tmp_path / "clip", frames)
  (tmp_path / "warps").mkdir()
  for t in range(3):  # frame t's content is frame 0's moved by t px right: d = (-t, 0)
    displacement = np.zeros((16, 16, 2), np.float32)
    displacement[..., 0] = -t
    np.save(tmp_path / "warps" / f"frame{t}.npy", displacement)
  out = tmp_path / "out"
  result = _run_cli(f"--video={video}", f"--output_dir={out}", "--resolution=16",
                    f"--warp_dir={tmp_path / 'warps'}", "--flows=false")
  assert result.returncode == 0, result.stderr
  arrays = annotations.read_npz(out / "clip.npz", "clip.npz")
  assert sorted(arrays) == ["source_coords", "source_visible"]
  assert arrays["source_visible"].all()
  ys, xs = np.mgrid[0:16, 0:16]
  for t in range(3):
    np.testing.assert_allclose(arrays["source_coords"][t], np.stack([xs - t, ys], -1))
  # One warp file too few: the frame without one is named, nothing is written.
  (tmp_path / "warps" / "frame2.npy").unlink()
  result = _run_cli(f"--video={video}", f"--output_dir={tmp_path / 'out2'}", "--resolution=16",
                    f"--warp_dir={tmp_path / 'warps'}", "--flows=false")
  assert result.returncode == 1
  assert result.stderr.strip().splitlines() == [
      f"annotate: --warp_dir={tmp_path / 'warps'}: 2 files, the video has more frames (frame 2 "
      "has none)"]
  assert _listing(tmp_path / "out2") == []


# --- Flow -----------------------------------------------------------------------------------------


def test_consecutive_flows_of_a_shift_right_by_3_px():
  texture = _texture(64, 80)
  frame_t = texture[:, 8:72]
  frame_next = texture[:, 5:69]  # frame_next(x) = frame_t(x - 3): content moves right by 3
  out = annotate.consecutive_flows(frame_t, frame_next, "medium")
  assert sorted(out) == ["flow_backward", "flow_forward", "valid_backward", "valid_forward"]
  assert out["flow_forward"].dtype == np.float16 and out["flow_forward"].shape == (64, 64, 2)
  assert out["valid_forward"].dtype == np.bool_ and out["valid_backward"].shape == (64, 64)
  interior = (slice(8, -8), slice(8, -8))
  forward = out["flow_forward"][interior].astype(np.float32).reshape(-1, 2)
  backward = out["flow_backward"][interior].astype(np.float32).reshape(-1, 2)
  np.testing.assert_allclose(np.median(forward, axis=0), [3.0, 0.0], atol=0.5)
  np.testing.assert_allclose(np.median(backward, axis=0), [-3.0, 0.0], atol=0.5)
  assert out["valid_forward"][interior].mean() > 0.8
  assert out["valid_backward"][interior].mean() > 0.8


# --- annotate_video and the command line ----------------------------------------------------------


def _inputs_for(tmp_path: Path, frames, name="clip"):
  """An OpenPose folder (joint 0 at (2t + 3, 5)), IUV images and masks for the frames."""
  height, width = frames[0].shape[:2]
  for t in range(len(frames)):
    _write_json(tmp_path / "pose", name, t, [_keypoints({0: (2.0 * t + 3, 5.0, 0.8)})])
    labels = np.zeros((height, width), np.uint8)
    labels[2:-2, 3:-3] = t + 1
    (tmp_path / "iuv").mkdir(exist_ok=True)
    _write_iuv(tmp_path / "iuv" / f"{name}{t}_IUV.png", labels, labels * 9, labels * 3)
    (tmp_path / "masks").mkdir(exist_ok=True)
    assert cv2.imwrite(str(tmp_path / "masks" / f"m{t}.png"), (labels > 0).astype(np.uint8) * 255)
  return dict(openpose_dir=tmp_path / "pose", densepose_dir=tmp_path / "iuv",
              mask_dir=tmp_path / "masks")


def _run_cli(*args):
  return subprocess.run([sys.executable, "-m", "input_pipeline.annotate", *map(str, args)],
                        cwd=REPO, capture_output=True, text=True, timeout=120)


def test_cli_writes_frames_and_annotations_of_an_mp4(tmp_path):
  frames = [np.roll(_texture(40, 48, seed=1), 2 * t, axis=1) for t in range(5)]
  video = video_io.write_video(tmp_path / "clip.mp4", frames, fps=10)
  inputs = _inputs_for(tmp_path, frames)
  out = tmp_path / "out"
  result = _run_cli(f"--video={video}", f"--output_dir={out}", "--resolution=32",
                    *(f"--{key}={value}" for key, value in inputs.items()))
  assert result.returncode == 0, result.stderr
  assert _listing(out) == ["clip", "clip.npz"]  # no temporaries left
  assert _listing(out / "clip") == [f"{t:06d}.png" for t in range(5)]

  # The frames are the video's at 32^2 (resize_and_pad); preparing them again changes nothing.
  written = video_io.read_video(out / "clip")
  np.testing.assert_array_equal(written, video_io.read_video(video, 32))
  np.testing.assert_array_equal(video_io.read_video(out / "clip", 32), written)

  arrays = annotations.read_npz(out / "clip.npz", "clip.npz")
  expected = {
      "joints": ((5, 25, 2), np.float32), "joints_valid": ((5, 25), np.bool_),
      "part_labels": ((5, 32, 32), np.uint8), "uv": ((5, 32, 32, 2), np.float32),
      "mask": ((5, 32, 32), np.bool_),
      "flow_forward": ((4, 32, 32, 2), np.float16), "flow_backward": ((4, 32, 32, 2), np.float16),
      "valid_forward": ((4, 32, 32), np.bool_), "valid_backward": ((4, 32, 32), np.bool_)}
  assert {key: (value.shape, value.dtype) for key, value in arrays.items()} == expected
  # 40 x 48 -> 27 x 32 at rows 2..28: x -> (x + 0.5) * 32 / 48 - 0.5, y -> (y + 0.5) * 27/40 + 1.5.
  for t in range(5):
    np.testing.assert_allclose(arrays["joints"][t, 0],
                               [(2 * t + 3.5) * 32 / 48 - 0.5, 5.5 * 27 / 40 + 1.5], atol=1e-5)
  assert arrays["joints_valid"][:, 0].all() and not arrays["joints_valid"][:, 1:].any()
  assert set(np.unique(arrays["part_labels"][3])) == {0, 4}
  np.testing.assert_array_equal(arrays["mask"], arrays["part_labels"] > 0)
  # The content moves right by 2 native px = 4/3 px at 32^2.
  forward = arrays["flow_forward"][:, 8:-8, 8:-8, 0].astype(np.float32)
  assert abs(float(np.median(forward)) - 4 / 3) < 0.5
  # The frame loader sees the pairs stored with their later frame (annotations.split_per_frame).
  per_frame = annotations.load_video_annotations(out / "clip", 5)
  assert len(per_frame) == 5 and not per_frame[0]["flow_forward"].any()


def test_module_imports_no_jax():
  code = "import sys, input_pipeline.annotate; print('jax' in sys.modules)"
  result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
  assert result.stdout.strip() == "False", result.stderr


def test_cli_missing_keypoints_file_exits_1_naming_it_and_writes_nothing(tmp_path):
  frames = [_texture(24, 16, seed=t) for t in range(3)]
  video = _frame_folder(tmp_path / "clip", frames)
  inputs = _inputs_for(tmp_path, frames)
  (inputs["openpose_dir"] / "clip_000000000001_keypoints.json").unlink()
  out = tmp_path / "out"
  out.mkdir()
  (out / "keep.txt").write_text("x")
  result = _run_cli(f"--video={video}", f"--output_dir={out}", "--resolution=16",
                    f"--openpose_dir={inputs['openpose_dir']}")
  assert result.returncode == 1
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1, result.stderr
  assert lines[0] == (f"annotate: {inputs['openpose_dir']}/clip_000000000001_keypoints.json: "
                      "missing (the keypoints of frame 1)")
  assert _listing(out) == ["keep.txt"]


def test_cli_wrong_size_iuv_exits_1_naming_it_and_writes_nothing(tmp_path):
  frames = [_texture(24, 16, seed=t) for t in range(3)]
  video = _frame_folder(tmp_path / "clip", frames)
  inputs = _inputs_for(tmp_path, frames)
  bad = inputs["densepose_dir"] / "clip2_IUV.png"
  zeros = np.zeros((24, 18), np.uint8)
  _write_iuv(bad, zeros, zeros, zeros)
  out = tmp_path / "out"
  result = _run_cli(f"--video={video}", f"--output_dir={out}", "--resolution=16",
                    f"--densepose_dir={inputs['densepose_dir']}", "--flows=false")
  assert result.returncode == 1
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith(f"annotate: {bad}: the IUV image is 18x24, the "
                                                 "video's frame 2 is 16x24"), result.stderr
  assert _listing(out) == []  # created for the temporaries, left empty


def test_usage_errors_name_the_flag(tmp_path):
  video = _frame_folder(tmp_path / "clip", [_texture(8, 8)] * 2)
  out = tmp_path / "out"
  with pytest.raises(ValueError, match="nothing to annotate"):
    annotate.annotate_video(video, out, 8, flows=False)
  with pytest.raises(ValueError, match="--flow_preset: 'slow'"):
    annotate.annotate_video(video, out, 12, flow_preset="slow")
  with pytest.raises(ValueError, match="--resolution"):
    annotate.annotate_video(video, out, 0)
  with pytest.raises(ValueError, match="--resolution: OpenCV's DIS flow needs frames of at least "
                                       "12 px, got 8"):
    annotate.annotate_video(video, out, 8)
  with pytest.raises(ValueError, match="--pose_threshold"):
    annotate.annotate_video(video, out, 12, pose_threshold=-0.1)
  with pytest.raises(DataError, match="--video=.*nope.mp4: no such file"):
    annotate.annotate_video(tmp_path / "nope.mp4", out, 12)
  with pytest.raises(ValueError, match="is the video"):
    annotate.annotate_video(video, tmp_path, 12)
  (tmp_path / "a_file").write_text("")
  with pytest.raises(ValueError, match="--output_dir=.*: exists and is not a directory"):
    annotate.annotate_video(video, tmp_path / "a_file", 12)
  assert not out.exists()


def test_existing_outputs_need_overwrite_and_are_replaced(tmp_path):
  frames = [_texture(12, 12, seed=t) for t in range(2)]
  video = _frame_folder(tmp_path / "clip", frames)
  masks = _inputs_for(tmp_path, frames)["mask_dir"]
  out = tmp_path / "out"
  annotate.annotate_video(video, out, 8, mask_dir=masks, flows=False, progress=False)
  with pytest.raises(ValueError, match=r"clip: exists already \(pass --overwrite"):
    annotate.annotate_video(video, out, 12, mask_dir=masks, flows=False, progress=False)
  annotate.annotate_video(video, out, 12, mask_dir=masks, flows=False, overwrite=True,
                          progress=False)
  assert _listing(out) == ["clip", "clip.npz"]
  assert annotations.read_npz(out / "clip.npz", "npz")["mask"].shape == (2, 12, 12)
  assert video_io.read_video(out / "clip").shape == (2, 12, 12, 3)
  (out / "clip.npz").unlink()
  (out / "clip.npz").mkdir()
  with pytest.raises(ValueError, match=r"clip\.npz: exists and is not a file"):
    annotate.annotate_video(video, out, 12, mask_dir=masks, flows=False, overwrite=True)


def test_failures_and_interrupts_during_the_pass_leave_nothing(tmp_path, monkeypatch):
  frames = [_texture(12, 12, seed=t) for t in range(3)]
  video = _frame_folder(tmp_path / "clip", frames)
  masks = _inputs_for(tmp_path, frames)["mask_dir"]
  out = tmp_path / "out"
  (masks / "m2.png").unlink()
  with pytest.raises(DataError, match=r"--mask_dir=.*: 2 files, the video has more frames "
                                      r"\(frame 2 has none\)"):
    annotate.annotate_video(video, out, 12, mask_dir=masks, progress=False)
  assert _listing(out) == []
  for t in (2, 3):
    assert cv2.imwrite(str(masks / f"m{t}.png"), np.zeros((12, 12), np.uint8))
  with pytest.raises(DataError, match=r"--mask_dir=.*: 4 masks, the video has 3 frames"):
    annotate.annotate_video(video, out, 12, mask_dir=masks, progress=False)
  assert _listing(out) == []
  (masks / "m3.png").unlink()

  def interrupted(*args):
    raise KeyboardInterrupt

  monkeypatch.setattr(annotate, "consecutive_flows", interrupted)
  with pytest.raises(KeyboardInterrupt):
    annotate.annotate_video(video, out, 12, mask_dir=masks, progress=False)
  assert _listing(out) == []
  monkeypatch.undo()
  frames_dir, npz_path = annotate.annotate_video(video, out, 12, mask_dir=masks, progress=False)
  assert _listing(out) == ["clip", "clip.npz"] and os.path.isdir(frames_dir)
  assert sorted(annotations.read_npz(npz_path, "npz")) == [
      "flow_backward", "flow_forward", "mask", "valid_backward", "valid_forward"]
