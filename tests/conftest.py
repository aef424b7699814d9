import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

MMIA = [sys.executable, "-m", "mmia.cli"]


@pytest.fixture
def media_dir(tmp_path: Path) -> Path:
    """A folder with a PNG, a WAV, a folder of frames, an animated GIF and broken media."""
    import soundfile as sf
    from PIL import Image

    d = tmp_path / "media"
    d.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(d / "img.png")
    Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8), mode="L").save(d / "gray.png")
    t = np.arange(8000) / 8000
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 220 * t)], axis=1) * 0.5
    sf.write(d / "tone.wav", stereo.astype(np.float32), 8000)
    frames = d / "clip"
    frames.mkdir()
    for i in (1, 2, 10):  # natural sort: 1, 2, 10 (not 1, 10, 2)
        Image.fromarray(np.full((6, 6, 3), i * 20, dtype=np.uint8)).save(frames / f"f{i}.png")
    gif = [Image.fromarray(np.full((6, 6, 3), v, dtype=np.uint8)) for v in (0, 128, 255)]
    gif[0].save(d / "anim.gif", save_all=True, append_images=gif[1:])
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    (d / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    (d / "broken.mp4").write_text("not really an mp4\n", encoding="utf-8")
    return d


def write_video(path: Path, frames, codec: str = "mpeg4", rate: int = 12) -> Path:
    """Encode uint8 RGB frames (T, H, W, 3) into a video file with PyAV (container from the suffix)."""
    import av

    frames = np.asarray(frames, dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"  # MJPEG takes full-range YUV only
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():  # flush the encoder's delayed frames
            container.mux(packet)
    return path


def write_jsonl(path: Path, rows) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return path


@pytest.fixture(scope="session")
def quick_cache(tmp_path_factory):
    """An mmia cache root holding the miniature demo testbeds, built once per test session."""
    from mmia.testbeds.base import list_testbeds
    from mmia.testbeds.build import build_testbed

    root = tmp_path_factory.mktemp("mmia-cache")
    for spec in list_testbeds():
        if spec.in_demo:
            build_testbed(spec.name, seed=0, quick=True, cache_dir=root)
    return root


@pytest.fixture(scope="session")
def ray_cluster():
    """One local 2-CPU Ray cluster for the session's --engine ray tests (no dashboard, a small object
    store), shut down at the end; yields its GCS address, which subprocess drivers join."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=300 * 1024**2, logging_level="WARNING")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
