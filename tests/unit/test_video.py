"""Unit tests for gpt4video.video: probing, sampling by seeking, writing.

Every test makes its own small files in tmp_path (with write_video or PyAV directly).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import wave
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from gpt4video.errors import InputError, VideoError
from gpt4video.video import VideoClip, VideoInfo, load_video, probe, uniform_timestamps, write_gif, write_video
from gpt4video.video import sampling, writing

pytestmark = pytest.mark.timeout(60)


# ---------------------------------------------------------------------------------------------
# Helpers


def ramp(num: int, height: int = 48, width: int = 64) -> np.ndarray:
    """Frames whose brightness rises with the frame index (frame i has a distinct grey level)."""
    levels = np.linspace(10, 240, num).round().astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (num, height, width, 3)).copy()


def brightness(frames: np.ndarray) -> np.ndarray:
    return frames.reshape(len(frames), -1).mean(axis=1)


def encode(
    path: Path,
    frames: np.ndarray,
    codec: str,
    pix_fmt: str,
    *,
    fps: int = 8,
    gop: int | None = None,
    rotation: int | None = None,
    options: dict[str, str] | None = None,
    output: object = None,
    container_format: str | None = None,
) -> Path:
    """Encode RGB frames with PyAV directly (for cases write_video deliberately does not cover)."""
    with av.open(output if output is not None else str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=fps, options=options or {})
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        if gop is not None:
            stream.codec_context.gop_size = gop
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for rgb in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode(None))
    return path


# ---------------------------------------------------------------------------------------------
# uniform_timestamps


def test_uniform_timestamps_are_segment_centres():
    assert uniform_timestamps(8.0, 4) == [1.0, 3.0, 5.0, 7.0]
    assert uniform_timestamps(1.0, 1) == [0.5]
    assert uniform_timestamps(0.0, 3) == [0.0, 0.0, 0.0]
    ts = uniform_timestamps(10.0, 7)
    assert len(ts) == 7 and all(0 < t < 10 for t in ts) and ts == sorted(ts)


@pytest.mark.parametrize("duration, num", [(1.0, 0), (1.0, -2), (1.0, 2.5), (-1.0, 3), (float("nan"), 3)])
def test_uniform_timestamps_rejects_bad_arguments(duration, num):
    with pytest.raises(InputError):
        uniform_timestamps(duration, num)


# ---------------------------------------------------------------------------------------------
# Round trips through every container write_video supports


@pytest.mark.parametrize(
    "ext, codec", [("mp4", "h264"), ("mkv", "h264"), ("webm", "vp9"), ("avi", "mpeg4"), ("gif", "gif")]
)
def test_round_trip_samples_right_frames_in_order(tmp_path, ext, codec):
    src = ramp(12)
    path = write_video(tmp_path / f"clip.{ext}", src, fps=8)
    assert path == tmp_path / f"clip.{ext}" and path.exists()

    info = probe(path)
    assert isinstance(info, VideoInfo)
    assert (info.width, info.height, info.rotation, info.codec, info.is_image) == (64, 48, 0, codec, False)
    assert info.fps == pytest.approx(8.0, rel=0.05)
    assert info.duration == pytest.approx(1.5, abs=0.05)
    assert info.num_frames == 12

    clip = load_video(path, num_frames=4)
    assert isinstance(clip, VideoClip)
    assert clip.frames.shape == (4, 48, 64, 3) and clip.frames.dtype == np.uint8
    assert clip.timestamps == pytest.approx(uniform_timestamps(info.duration, 4))
    # Centres of 4 segments of 12 frames fall on frames 1, 4, 7 and 10.
    expected = brightness(src[[1, 4, 7, 10]])
    np.testing.assert_allclose(brightness(clip.frames), expected, atol=6)
    assert np.all(np.diff(brightness(clip.frames)) > 0)


@pytest.mark.parametrize("ext", ["mp4", "webm"])
def test_every_frame_in_order_when_t_equals_frame_count(tmp_path, ext):
    src = ramp(10)
    clip = load_video(write_video(tmp_path / f"clip.{ext}", src), num_frames=10)
    np.testing.assert_allclose(brightness(clip.frames), brightness(src), atol=4)


def test_moving_square_order(tmp_path):
    src = np.zeros((16, 64, 96, 3), np.uint8)
    for i in range(16):
        src[i, 24:40, 4 + i * 5 : 4 + i * 5 + 12] = (255, 255, 255)
    clip = load_video(write_video(tmp_path / "square.mp4", src), num_frames=5)
    centres = [np.nonzero(f[..., 0].max(axis=0) > 128)[0].mean() for f in clip.frames]
    assert np.all(np.diff(centres) > 0)


def test_short_video_repeats_nearest_frames(tmp_path):
    src = ramp(3)
    clip = load_video(write_video(tmp_path / "short.mp4", src), num_frames=8)
    assert clip.frames.shape[0] == 8
    got = brightness(clip.frames)
    assert np.all(np.diff(got) >= 0)
    np.testing.assert_allclose(got[[0, -1]], brightness(src)[[0, -1]], atol=4)
    # Each segment centre shows the frame on screen at that time: frames start at 0, 0.125 and
    # 0.25 s; the 8 centres are 0.023, 0.070, 0.117, 0.164, 0.211, 0.258, 0.305 and 0.352 s.
    np.testing.assert_allclose(got, brightness(src)[[0, 0, 0, 1, 1, 2, 2, 2]], atol=4)


def test_write_accepts_a_list_of_frames_and_replaces_existing_file(tmp_path):
    path = tmp_path / "sub" / "clip.mp4"
    write_video(path, list(ramp(4)))
    write_video(path, ramp(6))
    assert probe(path).num_frames == 6
    assert [p.name for p in path.parent.iterdir()] == ["clip.mp4"]


def test_write_gif(tmp_path):
    path = write_gif(tmp_path / "anim", ramp(5), fps=5)
    assert path.suffix == ".gif"
    assert probe(path).num_frames == 5


def test_gif_keeps_colours(tmp_path):
    src = np.zeros((4, 32, 40, 3), np.uint8)
    src[:, :, :20] = (220, 30, 40)
    src[:, :, 20:] = (20, 120, 230)
    clip = load_video(write_gif(tmp_path / "c.gif", src), num_frames=4)
    np.testing.assert_array_equal(clip.frames, src)


# ---------------------------------------------------------------------------------------------
# Still images


@pytest.mark.parametrize("ext", ["png", "jpg", "webp", "bmp"])
def test_still_image_is_a_one_frame_video(tmp_path, ext):
    rgb = np.zeros((30, 50, 3), np.uint8)
    rgb[:, :25] = (200, 60, 20)
    path = tmp_path / f"img.{ext}"
    Image.fromarray(rgb).save(path)
    info = probe(path)
    assert info.is_image and info.duration == 0.0 and info.num_frames == 1 and info.fps is None
    assert (info.width, info.height) == (50, 30)
    clip = load_video(path, num_frames=8)
    assert clip.frames.shape == (1, 30, 50, 3) and clip.timestamps == [0.0]
    assert np.abs(clip.frames[0].astype(int) - rgb).mean() < 4  # lossy formats blur the edge a little
    small = load_video(path, max_side=25)
    assert small.frames.shape == (1, 15, 25, 3)


def test_png_with_alpha_and_palette(tmp_path):
    Image.new("RGBA", (9, 7), (10, 20, 30, 128)).save(tmp_path / "a.png")
    Image.new("RGB", (9, 7), (250, 0, 0)).quantize(4).save(tmp_path / "p.png")
    assert load_video(tmp_path / "a.png").frames.shape == (1, 7, 9, 3)
    assert tuple(load_video(tmp_path / "p.png").frames[0, 0, 0]) == (250, 0, 0)


def test_jpeg_exif_orientation_is_applied(tmp_path):
    rgb = np.zeros((20, 40, 3), np.uint8)
    rgb[:6, :6] = 255  # a white corner, top-left as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    path = tmp_path / "phone.jpg"
    Image.fromarray(rgb).save(path, exif=exif, quality=95)
    info = probe(path)
    assert (info.width, info.height, info.rotation) == (20, 40, 270)
    frame = load_video(path).frames[0]
    assert frame.shape == (40, 20, 3)
    assert frame[:6, -6:].mean() > 200  # clockwise turn moves top-left to top-right


# ---------------------------------------------------------------------------------------------
# Sizes and pixel formats


def test_odd_sizes(tmp_path):
    src = ramp(6, height=97, width=129)
    webm = load_video(write_video(tmp_path / "odd.webm", src), num_frames=3)
    assert webm.frames.shape == (3, 97, 129, 3)
    avi = load_video(write_video(tmp_path / "odd.avi", src), num_frames=3)
    assert avi.frames.shape == (3, 97, 129, 3)
    # x264 needs even sizes in 4:2:0: write_video pads by repeating the edge.
    mp4 = load_video(write_video(tmp_path / "odd.mp4", src), num_frames=3)
    assert mp4.frames.shape == (3, 98, 130, 3)
    np.testing.assert_allclose(brightness(mp4.frames), brightness(src[[1, 3, 5]]), atol=4)
    # An odd-sized yuv444p h264 file written by someone else.
    path = encode(tmp_path / "odd444.mp4", src, "libx264", "yuv444p")
    assert load_video(path, num_frames=2, max_side=64).frames.shape == (2, 48, 64, 3)


@pytest.mark.parametrize(
    "codec, pix_fmt, ext",
    [
        ("libx264", "yuv444p", "mp4"),
        ("libx264", "yuv420p10le", "mkv"),
        ("ffv1", "gray", "mkv"),
        ("ffv1", "gray16le", "mkv"),
        ("ffv1", "yuva420p", "mkv"),
        ("ffv1", "bgr0", "mkv"),
        ("ffv1", "yuv422p", "mkv"),
    ],
)
def test_pixel_formats_become_rgb24(tmp_path, codec, pix_fmt, ext):
    src = np.zeros((4, 18, 34, 3), np.uint8)
    src[:] = (200, 100, 50)
    path = encode(tmp_path / f"{pix_fmt}.{ext}", src, codec, pix_fmt)
    info = probe(path)
    assert info.pix_fmt == pix_fmt
    clip = load_video(path, num_frames=2)
    assert clip.frames.shape == (2, 18, 34, 3) and clip.frames.dtype == np.uint8
    expected = np.array([200, 100, 50]) if "gray" not in pix_fmt else np.full(3, 0.299 * 200 + 0.587 * 100 + 0.114 * 50)
    np.testing.assert_allclose(clip.frames.reshape(-1, 3).mean(axis=0), expected, atol=6)


# ---------------------------------------------------------------------------------------------
# Rotation metadata (display matrix)


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_metadata_is_applied(tmp_path, rotation):
    src = np.zeros((3, 32, 64, 3), np.uint8)
    src[:, :8, :8] = 255  # white square top-left, as stored
    src[:, 24:, 56:, 0] = 255  # red square bottom-right, as stored
    path = encode(tmp_path / f"rot{rotation}.mp4", src, "libx264", "yuv444p", rotation=rotation)
    info = probe(path)
    assert info.rotation == rotation
    upright = np.rot90(src[0], k=rotation // 90)  # counter-clockwise, as ffmpeg's autorotate shows it
    assert (info.height, info.width) == upright.shape[:2]
    clip = load_video(path, num_frames=2)
    assert clip.frames.shape == (2, *upright.shape)
    assert np.abs(clip.frames[0].astype(int) - upright).mean() < 6
    # With max_side the rotated, downscaled frame keeps the display orientation.
    assert load_video(path, num_frames=1, max_side=32).frames.shape[1:3] == (
        upright.shape[0] // 2,
        upright.shape[1] // 2,
    )


# ---------------------------------------------------------------------------------------------
# Bad inputs: one VideoError naming the file and the problem


def _wav(path: Path) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * 800)
    return path


def _cut_in_half(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


def _bad_file(kind: str, tmp_path: Path) -> Path:
    if kind == "missing":
        return tmp_path / "nope.mp4"
    if kind == "directory":
        (tmp_path / "dir.mp4").mkdir()
        return tmp_path / "dir.mp4"
    if kind == "empty":
        (tmp_path / "empty.mp4").touch()
        return tmp_path / "empty.mp4"
    if kind == "text":
        (tmp_path / "notes.mp4").write_text("these are my notes, not a video\n" * 20)
        return tmp_path / "notes.mp4"
    if kind == "text_png":
        (tmp_path / "notes.png").write_text("not an image either\n" * 20)
        return tmp_path / "notes.png"
    if kind == "audio":
        return _wav(tmp_path / "sound.wav")
    if kind == "truncated_moov_at_end":  # PyAV's default mp4 layout: the index is at the end
        full = encode(tmp_path / "full.mp4", ramp(24), "libx264", "yuv420p")
        return _cut_in_half(full, tmp_path / "cut.mp4")
    if kind == "truncated_faststart":  # write_video's layout: the index first, then the data
        full = write_video(tmp_path / "full.mp4", np.random.default_rng(0).integers(0, 255, (24, 48, 64, 3), np.uint8))
        return _cut_in_half(full, tmp_path / "cut.mp4")
    if kind == "truncated_webm":  # some frames decode, the rest is missing
        full = write_video(tmp_path / "full.webm", np.random.default_rng(0).integers(0, 255, (40, 48, 64, 3), np.uint8))
        return _cut_in_half(full, tmp_path / "cut.webm")
    if kind == "truncated_png":
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(tmp_path / "full.png")
        return _cut_in_half(tmp_path / "full.png", tmp_path / "cut.png")
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind, message",
    [
        ("missing", "file not found"),
        ("directory", "is a directory"),
        ("empty", "file is empty"),
        ("text", "not a video or image file"),
        ("text_png", "not a video or image file"),
        ("audio", "has no video stream"),
        ("truncated_moov_at_end", "truncated or corrupt"),
        ("truncated_faststart", "truncated or corrupt"),
        ("truncated_webm", "truncated or corrupt"),
        ("truncated_png", "truncated or corrupt"),
    ],
)
@pytest.mark.parametrize("reader", [probe, load_video])
def test_bad_inputs_raise_one_clear_video_error(tmp_path, kind, message, reader):
    path = _bad_file(kind, tmp_path)
    if reader is probe and kind == "truncated_webm":
        pytest.skip("probe only decodes the first frame; the missing end shows when sampling")
    with pytest.raises(VideoError) as caught:
        reader(path)
    err = caught.value
    assert err.path == str(path)
    assert str(path) in str(err) and message in str(err)
    assert isinstance(err, InputError) and isinstance(err, ValueError)
    assert err.__cause__ is None  # no raw av / PIL exception chained in


def test_bad_arguments(tmp_path):
    path = write_video(tmp_path / "c.mp4", ramp(4))
    for bad in (0, -1, 2.0, True):
        with pytest.raises(InputError):
            load_video(path, num_frames=bad)
    with pytest.raises(InputError):
        load_video(path, max_side=0)


# ---------------------------------------------------------------------------------------------
# Seeking, fallbacks, missing metadata


def test_long_video_is_sampled_by_seeking(tmp_path):
    # 30 minutes at 2 fps = 3600 frames of 32x32, a keyframe every 20 frames.
    n = 3600
    levels = np.linspace(0, 250, n).round().astype(np.uint8)
    src = np.broadcast_to(levels[:, None, None, None], (n, 32, 32, 3))
    path = encode(tmp_path / "long.mp4", src, "libx264", "yuv420p", fps=2, gop=20, options={"preset": "ultrafast"})
    info = probe(path)
    assert info.duration == pytest.approx(1800.0) and info.num_frames == n
    clip = load_video(path, num_frames=8)
    assert clip.decoded_frames < n // 10  # seeks: about one group of pictures per sample, not 3600
    expected = levels[[int(t * 2) for t in clip.timestamps]]
    np.testing.assert_allclose(brightness(clip.frames), expected, atol=3)


def test_damage_in_the_middle_costs_only_the_damaged_frames(tmp_path):
    src = ramp(200, 32, 32)
    path = encode(tmp_path / "ok.mp4", src, "libx264", "yuv420p", gop=10, options={"preset": "ultrafast"})
    data = bytearray(path.read_bytes())
    n = len(data)
    data[n // 3 : n // 3 + n // 10] = np.random.default_rng(0).integers(0, 255, n // 10, np.uint8).tobytes()
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    clip = load_video(damaged, num_frames=8)
    assert clip.frames.shape == (8, 32, 32, 3)
    # Samples away from the damaged third are intact.
    expected = brightness(src[[int(t * 8) for t in clip.timestamps]])
    np.testing.assert_allclose(brightness(clip.frames)[[0, 1, 5, 6, 7]], expected[[0, 1, 5, 6, 7]], atol=4)


def test_sequential_fallback_when_seeking_fails(tmp_path, monkeypatch):
    src = ramp(40, 32, 32)
    path = encode(tmp_path / "gop.mp4", src, "libx264", "yuv420p", gop=5)

    def broken_seek(self, target):
        raise sampling._SeekFailed

    monkeypatch.setattr(sampling._Sampler, "_seek_to", broken_seek)
    clip = load_video(path, num_frames=4)
    np.testing.assert_allclose(brightness(clip.frames), brightness(src[[5, 15, 25, 35]]), atol=4)


def test_streams_without_duration_metadata(tmp_path):
    """Matroska written to a pipe has no duration and no seek index; raw VP9 in IVF has no rate."""

    class Pipe(io.RawIOBase):  # a non-seekable output
        def __init__(self):
            self.data = bytearray()

        def writable(self):
            return True

        def write(self, b):
            self.data += b
            return len(b)

    src = ramp(40, 32, 32)
    pipe = Pipe()
    encode(Path("unused"), src, "libx264", "yuv420p", gop=10, output=pipe, container_format="matroska")
    path = tmp_path / "piped.mkv"
    path.write_bytes(bytes(pipe.data))
    with av.open(str(path)) as c:
        assert c.streams.video[0].duration is None and c.duration is None  # really no metadata
    info = probe(path)
    assert info.duration == pytest.approx(5.0, abs=0.2) and info.num_frames == 40
    clip = load_video(path, num_frames=4)
    np.testing.assert_allclose(brightness(clip.frames), brightness(src[[5, 15, 25, 35]]), atol=4)

    ivf = encode(tmp_path / "raw.ivf", src, "libvpx-vp9", "yuv420p", container_format="ivf")
    clip = load_video(ivf, num_frames=4)
    np.testing.assert_allclose(brightness(clip.frames), brightness(src[[5, 15, 25, 35]]), atol=4)


def test_video_with_audio_track(tmp_path):
    path = tmp_path / "av.mkv"
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=8)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        audio = container.add_stream("pcm_s16le", rate=8000, layout="mono")
        for i, rgb in enumerate(ramp(8, 32, 32)):
            container.mux(video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
            samples = av.AudioFrame.from_ndarray(np.zeros((1, 1000), np.int16), format="s16", layout="mono")
            samples.sample_rate, samples.pts = 8000, i * 1000
            container.mux(audio.encode(samples))
        container.mux(video.encode(None))
        container.mux(audio.encode(None))
    clip = load_video(path, num_frames=4)
    assert clip.frames.shape == (4, 32, 32, 3) and np.all(np.diff(brightness(clip.frames)) > 0)


# ---------------------------------------------------------------------------------------------
# 4K: downscaling and bounded memory


@pytest.fixture(scope="module")
def uhd_video(tmp_path_factory) -> Path:
    frames = np.zeros((3, 2160, 3840, 3), np.uint8)
    frames[:, :, :1920] = (150, 0, 0)  # left half red
    frames[1] += 40
    frames[2] += 80
    path = tmp_path_factory.mktemp("uhd") / "uhd.mp4"
    return encode(path, frames, "libx264", "yuv420p", fps=2, options={"preset": "ultrafast"})


def test_max_side_downscales_keeping_aspect(uhd_video):
    info = probe(uhd_video)
    assert (info.width, info.height) == (3840, 2160)
    clip = load_video(uhd_video, num_frames=4, max_side=256)
    assert clip.frames.shape == (4, 144, 256, 3)
    assert clip.frames[:, :, :120, 0].mean() > 140 and clip.frames[:, :, 136:, 0].mean() < 100


def test_loading_4k_stays_well_under_2gb(uhd_video):
    script = textwrap.dedent(
        f"""
        import resource
        from gpt4video.video import load_video
        clip = load_video({str(uhd_video)!r}, num_frames=4, max_side=512)
        assert clip.frames.shape == (4, 288, 512, 3), clip.frames.shape
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    peak_mib = int(out.stdout.strip().splitlines()[-1]) / 1024
    assert peak_mib < 2048, f"peak RSS {peak_mib:.0f} MiB"


# ---------------------------------------------------------------------------------------------
# The writer: validation and atomicity


@pytest.mark.parametrize(
    "frames",
    [
        np.zeros((4, 16, 16, 3), np.float32),  # wrong dtype
        np.zeros((16, 16, 3), np.uint8),  # a single frame without the T axis
        np.zeros((4, 16, 16, 4), np.uint8),  # RGBA
        np.zeros((0, 16, 16, 3), np.uint8),  # no frames
        [],  # no frames
        [np.zeros((16, 16, 3), np.uint8), np.zeros((8, 8, 3), np.uint8)],  # sizes differ
        "not frames",
    ],
)
def test_writer_rejects_bad_frames_and_leaves_nothing(tmp_path, frames):
    with pytest.raises(InputError):
        write_video(tmp_path / "out.mp4", frames)
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_bad_fps_and_extension(tmp_path):
    with pytest.raises(InputError):
        write_video(tmp_path / "out.mp4", ramp(2), fps=0)
    with pytest.raises(InputError, match="extension"):
        write_video(tmp_path / "out.xyz", ramp(2))
    with pytest.raises(InputError, match="encoder"):
        write_video(tmp_path / "out.mp4", ramp(2), codec="no-such-encoder")
    assert list(tmp_path.iterdir()) == []


def test_writer_crash_leaves_no_temp_file_and_keeps_old_video(tmp_path, monkeypatch):
    path = write_video(tmp_path / "out.mp4", ramp(3))
    before = path.read_bytes()

    def crash(tmp, *args):
        tmp.write_bytes(b"half a video")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(writing, "_encode", crash)
    with pytest.raises(RuntimeError):
        write_video(path, ramp(5))
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]
    assert path.read_bytes() == before


def test_writer_honours_codec_override_and_umask(tmp_path):
    path = write_video(tmp_path / "x.mkv", ramp(4), codec="ffv1")
    assert probe(path).codec == "ffv1"
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # like any normally created file, not 0600
