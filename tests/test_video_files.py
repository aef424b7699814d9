"""Video files (.mp4, .m4v, .mov, .webm, .mkv, .avi) decoded with PyAV: frames, sampling, sizes, broken files,
the load-time check, the CLI, and a VLM scoring a video row."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tiny_models import tiny_dir  # noqa: F401  (fixture)

from mmia.data import load_dataset, load_video
from mmia.data import media as media_mod
from mmia.data.media import MediaError, check_media
from mmia.errors import InputError
from tests.conftest import write_jsonl, write_video

# 12 solid colours at least 128 apart in some channel, so a lossy codec's frame is still its own colour.
PALETTE = np.array([c for c in itertools.product((0, 128, 255), repeat=3)][1:25:2], dtype=np.uint8)
N = len(PALETTE)
TOL = 24  # lossy codecs: largest per-channel error allowed on a solid frame

# (suffix, encoder): every container the loader accepts, each with an encoder it commonly holds.
CASES = [(".mp4", "mpeg4"), (".m4v", "mpeg4"), (".mov", "mpeg4"), (".webm", "libvpx"), (".webm", "libvpx-vp9"),
         (".mkv", "mjpeg"), (".avi", "mjpeg")]


def clip_frames(n: int = N, hw: tuple[int, int] = (32, 32)) -> np.ndarray:
    return np.broadcast_to(PALETTE[:n, None, None, :], (n, *hw, 3)).copy()


def need_encoder(codec: str) -> None:
    import av

    try:
        av.Codec(codec, "w")
    except Exception:  # UnknownCodecError: this FFmpeg build lacks the encoder
        pytest.skip(f"PyAV's bundled FFmpeg has no {codec} encoder")


@pytest.fixture(params=CASES, ids=[f"{s[1:]}-{c}" for s, c in CASES])
def clip(request, tmp_path) -> Path:
    suffix, codec = request.param
    need_encoder(codec)
    return write_video(tmp_path / f"clip{suffix}", clip_frames(), codec)


def colour_indices(frames: np.ndarray) -> list[int]:
    """Which palette colour each decoded frame is, after checking it is within TOL of it."""
    means = frames.reshape(len(frames), -1, 3).mean(axis=1)
    idx = np.abs(means[:, None, :] - PALETTE[None].astype(float)).max(axis=2).argmin(axis=1)
    err = np.abs(frames.astype(int) - PALETTE[idx][:, None, None, :].astype(int)).max()
    assert err <= TOL, f"decoded colours off by {err}"
    return idx.tolist()


def test_every_frame_decodes_in_order(clip):
    frames = load_video(clip)
    assert frames.shape == (N, 32, 32, 3) and frames.dtype == np.uint8
    assert colour_indices(frames) == list(range(N))
    check_media(clip, "video")


def test_max_frames_samples_evenly(clip):
    # np.linspace(0, 11, 5).round() -> 0, 3, 6, 8, 11 (5.5 rounds to even)
    assert colour_indices(load_video(clip, max_frames=5)) == [0, 3, 6, 8, 11]
    assert colour_indices(load_video(clip, max_frames=2)) == [0, 11]
    assert colour_indices(load_video(clip, max_frames=40)) == list(range(N))  # fewer frames than asked: all


def test_only_the_sampled_frames_are_converted(clip, monkeypatch):
    """With max_frames, a long video costs max_frames converted frames of memory, not all of them."""
    converted = []
    real = media_mod._rgb
    monkeypatch.setattr(media_mod, "_rgb", lambda f: converted.append(1) or real(f))
    assert len(load_video(clip, max_frames=3)) == 3
    assert len(converted) == 3


def test_size_resizes_each_frame(clip):
    assert load_video(clip, size=16).shape == (N, 16, 16, 3)
    small = load_video(clip, max_frames=4, size=(8, 24))  # (H, W), as for images
    assert small.shape == (4, 8, 24, 3)
    assert colour_indices(small) == [0, 4, 7, 11]


def test_bytes_decode_like_the_file(clip):
    data = clip.read_bytes()
    assert media_mod.is_video_file(data)
    np.testing.assert_array_equal(load_video(data, max_frames=5), load_video(clip, max_frames=5))
    check_media(data, "video")


def test_wrong_frame_count_in_the_container_is_corrected(tmp_path, monkeypatch):
    """A count that is not the frames decoded (edit lists, a cut tail) must not skew the sampling."""
    mp4 = write_video(tmp_path / "c.mp4", clip_frames())
    for wrong in (7, 20):
        monkeypatch.setattr(media_mod, "_av_count", lambda ref, n=wrong: n)
        assert colour_indices(load_video(mp4, max_frames=5)) == [0, 3, 6, 8, 11]


def broken_files(tmp_path: Path) -> dict[str, Path]:
    good = write_video(tmp_path / "good.mp4", clip_frames()).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(good[: len(good) // 2])  # the index (moov) comes last: cut off
    (tmp_path / "cut90.mp4").write_bytes(good[: int(len(good) * 0.9)])
    (tmp_path / "text.mp4").write_text("not a video, only text\n", encoding="utf-8")
    (tmp_path / "empty.webm").write_bytes(b"")
    return {p: tmp_path / p for p in ("cut.mp4", "cut90.mp4", "text.mp4", "empty.webm")}


@pytest.mark.parametrize("name", ["cut.mp4", "cut90.mp4", "text.mp4", "empty.webm"])
def test_broken_files_do_not_decode(tmp_path, name):
    path = broken_files(tmp_path)[name]
    for read in (lambda: check_media(path, "video"), lambda: load_video(path), lambda: load_video(path, max_frames=4)):
        with pytest.raises(MediaError, match="video does not decode") as err:
            read()
        assert str(err.value).startswith(f"{path}: video does not decode (")
        assert "\n" not in str(err.value)


def test_file_without_a_video_stream_says_so(tmp_path):
    import av

    need_encoder("pcm_s16le")
    path = tmp_path / "sound.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    for read in (lambda: check_media(path, "video"), lambda: load_video(path, max_frames=2)):
        with pytest.raises(MediaError, match=r"video file has no video stream \(only audio\)"):
            read()


def test_dataset_load_checks_video_files(tmp_path):
    write_video(tmp_path / "ok.mp4", clip_frames())
    broken_files(tmp_path)
    ds = load_dataset(write_jsonl(tmp_path / "d.jsonl", [{"id": "a", "text": "t", "video": "ok.mp4", "label": 1}]))
    assert ds[0].video == tmp_path / "ok.mp4" and ds.modalities == ("text", "video")
    rows = [{"id": "a", "text": "t", "video": "ok.mp4", "label": 1}, {"id": "b", "text": "t", "video": "text.mp4"}]
    bad = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(InputError, match=r"row 2: video does not decode .*text\.mp4$"):
        load_dataset(bad)
    skipped = load_dataset(bad, skip_bad=True)
    assert skipped.ids == ["a"] and skipped.skipped[0].row == 2


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "mmia.cli", *map(str, args)], capture_output=True, text=True)


def test_inspect_reads_an_mp4_column_and_reports_a_broken_one(tmp_path):
    write_video(tmp_path / "ok.mp4", clip_frames())
    cut = broken_files(tmp_path)["cut.mp4"]
    good = write_jsonl(tmp_path / "good.jsonl", [{"id": "a", "text": "t", "video": "ok.mp4", "label": 1},
                                                 {"id": "b", "text": "u", "video": "ok.mp4", "label": 0}])
    proc = run_cli("inspect", good)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"n samples\W+2\b", proc.stdout) and "text, video" in proc.stdout, proc.stdout

    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": "a", "text": "t", "video": "ok.mp4", "label": 1},
                                               {"id": "b", "text": "u", "video": "cut.mp4", "label": 0}])
    proc = run_cli("inspect", bad)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == [f"error: {bad}, row 2: video does not decode (no video or audio stream found; truncated?): {cut}"]


def test_vlm_scores_an_mp4_row_as_its_frames_in_png(tiny_dir, tmp_path):  # noqa: F811
    """The VLM target reads a video row from an .mp4 exactly as from the same frames as PNG files."""
    from PIL import Image

    from mmia.data.schema import Sample
    from mmia.targets import load_target
    from mmia.targets.base import IMAGE

    rng = np.random.default_rng(0)
    noisy = np.clip(clip_frames().astype(int) + rng.integers(-40, 40, (N, 32, 32, 3)), 0, 255)
    mp4 = write_video(tmp_path / "clip.mp4", noisy)
    folder = tmp_path / "frames"
    folder.mkdir()
    decoded = load_video(mp4)
    for t, frame in enumerate(decoded):
        Image.fromarray(frame).save(folder / f"frame_{t:02d}.png")  # lossless: the very frames the mp4 decodes to

    target = load_target(tiny_dir("llava"))
    assert N > target.max_frames  # both forms are sampled down, over the same 12 frames
    rows = [Sample(id="v", row=1, prompt="describe", answer="a red circle", video=v) for v in (mp4, folder)]
    from_mp4, from_png = (target.encode(s) for s in rows)
    assert int((from_mp4.codes == IMAGE).sum()) > 0
    np.testing.assert_array_equal(from_mp4.input_ids, from_png.input_ids)
    np.testing.assert_array_equal(from_mp4.extras["pixel_values"], from_png.extras["pixel_values"])
    (a,), (b,) = target.token_stats([from_mp4]), target.token_stats([from_png])
    assert set(a) == set(b) and a
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)

    # the frames matter: the clip reversed scores differently
    rev = tmp_path / "rev.mp4"
    write_video(rev, noisy[::-1])
    (c,) = target.token_stats([target.encode(Sample(id="r", row=2, prompt="describe", answer="a red circle",
                                                    video=rev))])
    assert not np.allclose(a["logp"], c["logp"], equal_nan=True)


def test_every_reader_of_video_takes_a_file(tmp_path):
    """Perturbed neighbours and the blind shift features read an .mp4 as they read its frames as PNG."""
    from PIL import Image

    from mmia.data.schema import Dataset, Sample
    from mmia.perturb.neighbours import decode_media
    from mmia.shift.inputs import ShiftInputs

    mp4 = write_video(tmp_path / "clip.mp4", clip_frames())
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, frame in enumerate(load_video(mp4)):
        Image.fromarray(frame).save(folder / f"{t}.png")
    sample = Sample(id="v", row=1, text="t", video=mp4, label=1)
    np.testing.assert_array_equal(decode_media(sample, "video"), load_video(folder))

    def features(video):
        samples = [Sample(id=f"s{i}", row=i + 1, text="t", video=video, label=i % 2) for i in range(2)]
        return ShiftInputs(Dataset(tmp_path / "d.jsonl", samples)).image_global

    from_mp4 = features(mp4)
    assert from_mp4.shape[0] == 2 and np.abs(from_mp4).sum() > 0
    np.testing.assert_array_equal(from_mp4, features(folder))
