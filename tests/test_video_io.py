"""video_io.py: listing, reading, conversion and resize/pad rules, errors, writing."""
import cv2
import imageio.v3 as iio
import numpy as np
import pytest

from input_pipeline import video_io
from input_pipeline.video_io import VideoReadError
from video_fixtures import save_cmyk_jpeg, save_with_orientation
from video_fixtures import smooth_frames as _smooth_frames, write_pngs as _write_pngs


def test_list_videos_finds_files_and_frame_folders_and_ignores_the_rest(tmp_path):
  frames = _smooth_frames(3, 16, 16)
  video_io.write_video(tmp_path / "b.mp4", frames, 25)
  video_io.write_video(tmp_path / "a.mov", frames, 25)
  _write_pngs(tmp_path / "c", frames)
  _write_pngs(tmp_path / "d.mp4", frames)  # FOMM's png layout: folder named like the video
  (tmp_path / "b.npz").write_bytes(b"ground truth")
  (tmp_path / "notes.txt").write_text("x")
  (tmp_path / "empty").mkdir()
  (tmp_path / "._b.mp4").write_bytes(b"resource fork")
  videos = video_io.list_videos(tmp_path)
  assert [p.name for p in videos] == ["a.mov", "b.mp4", "c", "d.mp4"]
  assert [video_io.video_name(p) for p in videos] == ["a", "b", "c", "d"]


def test_list_videos_rejects_duplicate_names_and_missing_dir(tmp_path):
  video_io.write_video(tmp_path / "x.mp4", _smooth_frames(2, 16, 16), 25)
  _write_pngs(tmp_path / "x", _smooth_frames(2, 16, 16))
  with pytest.raises(video_io.DataError, match="same video name 'x'"):
    video_io.list_videos(tmp_path)
  with pytest.raises(video_io.DataError, match="not a directory"):
    video_io.list_videos(tmp_path / "missing")


def test_png_folder_reads_exactly_in_natural_name_order(tmp_path):
  frames = _smooth_frames(12, 20, 24)
  names = [f"frame{i}.png" for i in range(12)]  # frame10 must come after frame9
  _write_pngs(tmp_path / "v", frames, names)
  read = list(video_io.read_video_frames(tmp_path / "v"))
  assert len(read) == 12
  for got, want in zip(read, frames):
    assert got.dtype == np.uint8 and got.shape == (20, 24, 3)
    np.testing.assert_array_equal(got, want)
  assert video_io.video_fps(tmp_path / "v") is None


def test_mp4_roundtrip_count_size_fps_and_quality(tmp_path):
  frames = _smooth_frames(10, 32, 48)
  path = video_io.write_video(tmp_path / "v.mp4", iter(frames), fps=30000 / 1001)
  read = video_io.read_video(path)
  assert read.shape == (10, 32, 48, 3) and read.dtype == np.uint8
  # Lossy (crf 18, 4:2:0 chroma on saturated colours); a swapped channel order would be ~60.
  assert np.abs(read.astype(int) - np.stack(frames)).mean() < 6
  assert video_io.video_fps(path) == pytest.approx(29.97, abs=0.01)


def test_write_video_odd_size_is_padded_and_bad_input_leaves_no_file(tmp_path):
  frames = _smooth_frames(4, 15, 21)
  read = video_io.read_video(video_io.write_video(tmp_path / "odd.mp4", frames, 25))
  assert read.shape == (4, 16, 22, 3)
  # The padding repeats the last row/column.
  assert np.abs(read[:, 15].astype(int) - read[:, 14]).mean() < 4
  mixed = [frames[0], frames[1][:8]]
  with pytest.raises(ValueError, match="frame 1 has shape"):
    video_io.write_video(tmp_path / "mixed.mp4", mixed, 25)
  assert not (tmp_path / "mixed.mp4").exists()
  with pytest.raises(ValueError, match="h264"):
    video_io.write_video(tmp_path / "x.gif", frames, 25)


def test_gif_reads(tmp_path):
  frames = _smooth_frames(5, 16, 20)
  iio.imwrite(tmp_path / "v.gif", np.stack(frames), duration=40, loop=0)
  read = video_io.read_video(tmp_path / "v.gif")
  assert read.shape == (5, 16, 20, 3)
  assert np.abs(read.astype(int) - np.stack(frames)).mean() < 12  # 256-colour palette


def test_to_rgb_uint8_conversion_rules():
  gray = np.array([[0, 128], [200, 255]], np.uint8)
  np.testing.assert_array_equal(video_io.to_rgb_uint8(gray), np.repeat(gray[..., None], 3, -1))
  np.testing.assert_array_equal(video_io.to_rgb_uint8(gray[..., None])[..., 1], gray)
  # 16 bit: x * 255 / 65535 rounded.
  deep = np.array([[[0, 257, 65535], [32768, 1000, 40000]]], np.uint16)
  want = np.array([[[0, 1, 255], [128, 4, 156]]], np.uint8)
  np.testing.assert_array_equal(video_io.to_rgb_uint8(deep), want)
  # Float in [0, 1], clipped.
  floats = np.array([[[0.0, 0.5, 1.0], [-0.2, 1.7, 0.25]]], np.float32)
  np.testing.assert_array_equal(video_io.to_rgb_uint8(floats),
                                [[[0, 128, 255], [0, 255, 64]]])
  # RGBA on white: c * a + 255 * (1 - a).
  rgba = np.array([[[100, 50, 200, 128], [10, 20, 30, 0], [10, 20, 30, 255]]], np.uint8)
  a = 128 / 255
  want = [[[round(100 * a + 255 * (1 - a)), round(50 * a + 255 * (1 - a)),
            round(200 * a + 255 * (1 - a))], [255, 255, 255], [10, 20, 30]]]
  np.testing.assert_array_equal(video_io.to_rgb_uint8(rgba), want)
  gray_alpha = np.array([[[0, 0], [0, 255], [100, 51]]], np.uint8)
  np.testing.assert_array_equal(video_io.to_rgb_uint8(gray_alpha)[..., 0],
                                [[255, 0, round(100 * 0.2 + 255 * 0.8)]])
  with pytest.raises(VideoReadError, match="^clip.png: unsupported frame dtype int32$"):
    video_io.to_rgb_uint8(np.zeros((2, 2, 3), np.int32), "clip.png")
  with pytest.raises(VideoReadError, match="unsupported frame shape"):
    video_io.to_rgb_uint8(np.zeros((2, 2, 5), np.uint8))


def test_png_folder_with_gray_rgba_and_16_bit_frames_is_converted(tmp_path):
  rng = np.random.default_rng(3)
  gray = rng.integers(0, 256, (8, 10), dtype=np.uint8)
  rgba = rng.integers(0, 256, (8, 10, 4), dtype=np.uint8)
  deep = rng.integers(0, 65536, (8, 10, 3), dtype=np.uint16)
  _write_pngs(tmp_path / "v", [gray, rgba, deep])
  read = list(video_io.read_video_frames(tmp_path / "v"))
  np.testing.assert_array_equal(read[0], np.repeat(gray[..., None], 3, -1))
  alpha = rgba[..., 3:].astype(np.float64) / 255
  want_rgba = np.round(rgba[..., :3] * alpha + 255 * (1 - alpha))
  assert np.abs(read[1].astype(int) - want_rgba).max() <= 1  # float32 vs float64 rounding
  # Pillow keeps the high byte of 16-bit colour (to_rgb_uint8's rounding of arrays may be 1 up).
  np.testing.assert_array_equal(read[2], (deep >> 8).astype(np.uint8))


def test_resize_and_pad_portrait_shrink_geometry():
  # UBC Fashion: 720 wide, 940 high -> 392 x 512, 60 white columns each side.
  frame = np.full((940, 720, 3), (10, 20, 30), np.uint8)
  out = video_io.resize_and_pad(frame, 512)
  assert out.shape == (512, 512, 3)
  np.testing.assert_array_equal(out[:, :60], 255)
  np.testing.assert_array_equal(out[:, 452:], 255)
  np.testing.assert_array_equal(out[:, 60:452], np.broadcast_to([10, 20, 30], (512, 392, 3)))


def test_resize_and_pad_uses_area_to_shrink_linear_to_enlarge_and_centres():
  rng = np.random.default_rng(0)
  small = rng.integers(0, 256, (20, 10, 3), dtype=np.uint8)
  out = video_io.resize_and_pad(small, 32)  # x1.6: 32 x 16, 8 white columns each side
  np.testing.assert_array_equal(out[:, :8], 255)
  np.testing.assert_array_equal(out[:, 24:], 255)
  want = cv2.resize(small, (16, 32), interpolation=cv2.INTER_LINEAR)
  np.testing.assert_array_equal(out[:, 8:24], want)
  large = rng.integers(0, 256, (64, 30, 3), dtype=np.uint8)
  out = video_io.resize_and_pad(large, 32)  # x0.5: 32 x 15, left 8, right 9
  np.testing.assert_array_equal(out[:, :8], 255)
  np.testing.assert_array_equal(out[:, 23:], 255)
  want = cv2.resize(large, (15, 32), interpolation=cv2.INTER_AREA)
  np.testing.assert_array_equal(out[:, 8:23], want)
  wide = rng.integers(0, 256, (10, 40, 3), dtype=np.uint8)
  out = video_io.resize_and_pad(wide, 32)  # landscape: 8 x 32, 12 white rows above and below
  np.testing.assert_array_equal(out[:12], 255)
  np.testing.assert_array_equal(out[20:], 255)
  square = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
  np.testing.assert_array_equal(video_io.resize_and_pad(square, 32), square)


def test_frames_of_different_sizes_come_out_as_they_are(tmp_path):
  frames = _smooth_frames(2, 20, 24) + _smooth_frames(1, 12, 30)
  _write_pngs(tmp_path / "v", frames)
  assert [f.shape for f in video_io.read_video_frames(tmp_path / "v")] == [
      (20, 24, 3), (20, 24, 3), (12, 30, 3)]
  with pytest.raises(VideoReadError, match="frame 2 is 30x12, frame 0 is 24x20"):
    video_io.read_video(tmp_path / "v")
  assert video_io.read_video(tmp_path / "v", resolution=16).shape == (3, 16, 16, 3)


def _assert_one_line_error(path, match):
  with pytest.raises(VideoReadError) as info:
    list(video_io.read_video_frames(path))
  message = str(info.value)
  assert message.startswith(str(path)) and "\n" not in message and match in message, message


def test_corrupt_and_non_video_inputs_raise_one_line_errors(tmp_path):
  (tmp_path / "text.mp4").write_text("this is not a video\n")
  _assert_one_line_error(tmp_path / "text.mp4", "not a readable video")
  (tmp_path / "empty.mp4").write_bytes(b"")
  _assert_one_line_error(tmp_path / "empty.mp4", "not a readable video")
  data = video_io.write_video(tmp_path / "ok.mp4", _smooth_frames(10, 32, 32), 25).read_bytes()
  (tmp_path / "truncated.mp4").write_bytes(data[:len(data) // 2])
  _assert_one_line_error(tmp_path / "truncated.mp4", "")
  (tmp_path / "notes.txt").write_text("x")
  _assert_one_line_error(tmp_path / "notes.txt", "not a video")
  _assert_one_line_error(tmp_path / "missing.mp4", "no such file")
  (tmp_path / "nothing").mkdir()
  _assert_one_line_error(tmp_path / "nothing", "no frames")
  _write_pngs(tmp_path / "frames", _smooth_frames(2, 8, 8))
  (tmp_path / "frames" / "0000002.png").write_bytes(b"\x89PNG broken")
  with pytest.raises(VideoReadError, match="0000002.png: not a readable"):
    list(video_io.read_video_frames(tmp_path / "frames"))
  with pytest.raises(VideoReadError, match="text.mp4: not a readable video"):
    video_io.video_fps(tmp_path / "text.mp4")


# ---------------------------------------------------------------------------------------------
# Still images as people have them: CMYK, EXIF orientation, very large


def test_cmyk_jpeg_frames_and_source_are_pillows_rgb(tmp_path):
  from PIL import Image
  from internet_jax import animate
  folder = tmp_path / "cmyk"
  folder.mkdir()
  frames = _smooth_frames(2, 20, 28, seed=5)
  paths = [save_cmyk_jpeg(folder / f"{t:07d}.jpg", frame) for t, frame in enumerate(frames)]
  for path, read in zip(paths, video_io.read_video_frames(folder)):
    with Image.open(path) as image:
      assert image.mode == "CMYK"
      expected = np.asarray(image.convert("RGB"))
    np.testing.assert_array_equal(read, expected)
    np.testing.assert_array_equal(animate.read_image(path), expected)  # the source image
    # The colours survive (not the inks read as RGBA channels).
    assert np.abs(read.astype(int) - frames[paths.index(path)]).mean() < 3


@pytest.mark.parametrize("orientation, turns", [(6, -1), (8, 1)])
def test_exif_orientation_is_applied_to_frames(tmp_path, orientation, turns):
  stored = _smooth_frames(1, 12, 20, seed=6)[0]  # landscape as stored, portrait when shown
  folder = tmp_path / "frames"
  folder.mkdir()
  save_with_orientation(folder / "0000000.png", stored, orientation)  # lossless: exact
  save_with_orientation(folder / "0000001.jpg", stored, orientation)
  png, jpeg = video_io.read_video_frames(folder)
  np.testing.assert_array_equal(png, np.rot90(stored, turns))  # np.rot90: k > 0 anticlockwise
  assert png.shape == jpeg.shape == (20, 12, 3)
  assert np.abs(jpeg.astype(int) - png).mean() < 4


def test_image_pixel_limit_is_configurable_and_named(tmp_path, monkeypatch):
  path = tmp_path / "photo.png"
  cv2.imwrite(str(path), np.zeros((30, 40, 3), np.uint8))  # 1200 pixels
  monkeypatch.setenv(video_io.MAX_IMAGE_PIXELS_ENV, "1000")
  with pytest.raises(VideoReadError, match=rf"^{path}: image 40x30 = 1200 pixels, larger than "
                     r"the limit of 1000 pixels \(set \$INTERNET_JAX_MAX_IMAGE_PIXELS"):
    video_io.read_image(path)
  monkeypatch.setenv(video_io.MAX_IMAGE_PIXELS_ENV, "500")  # beyond twice it: Pillow's own error
  with pytest.raises(VideoReadError, match=rf"^{path}: image larger than the limit of 500 "):
    video_io.read_image(path)
  monkeypatch.setenv(video_io.MAX_IMAGE_PIXELS_ENV, "lots")
  with pytest.raises(ValueError, match=r"^\$INTERNET_JAX_MAX_IMAGE_PIXELS: must be a positive"):
    video_io.read_image(path)
  monkeypatch.setenv(video_io.MAX_IMAGE_PIXELS_ENV, "1200")
  assert video_io.read_image(path).shape == (30, 40, 3)


def test_images_beyond_pillows_decompression_bomb_default_are_read(tmp_path, monkeypatch):
  from PIL import Image
  monkeypatch.delenv(video_io.MAX_IMAGE_PIXELS_ENV, raising=False)
  size = (9500, 9500)  # 90.25 M pixels, above Pillow's default limit of 89.48 M
  assert size[0] * size[1] > 89_478_485 and size[0] * size[1] <= video_io.max_image_pixels()
  path = tmp_path / "scan.png"
  Image.new("RGB", size, (30, 60, 90)).save(path, compress_level=1)
  image = video_io.read_image(path)
  assert image.shape == (9500, 9500, 3) and tuple(image[-1, -1]) == (30, 60, 90)
