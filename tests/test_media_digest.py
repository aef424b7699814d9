"""Cache keys follow media content, not paths: a moved data folder keeps its cached values, and a
file rewritten in place never gets stale ones."""

import os
import shutil
from types import SimpleNamespace

from mmia.data.ids import media_digest
from mmia.engine.run_generative import content_tag


def _sample(image=None, video=None):
    return SimpleNamespace(text=None, prompt="p", answer="a", image=image, audio=None, video=video)


def test_moved_media_keep_their_tag_and_rewritten_media_change_it(tmp_path):
    a = tmp_path / "a"
    (a / "frames").mkdir(parents=True)
    (a / "x.png").write_bytes(b"one")
    (a / "frames" / "0.png").write_bytes(b"f0")
    (a / "frames" / "1.png").write_bytes(b"f1")
    b = tmp_path / "b"
    shutil.copytree(a, b)
    assert content_tag(_sample(a / "x.png", a / "frames")) == content_tag(_sample(b / "x.png", b / "frames"))
    assert media_digest(a / "x.png") == media_digest(b"one")

    before = content_tag(_sample(a / "x.png"))
    (a / "x.png").write_bytes(b"two")
    os.utime(a / "x.png", ns=(1, 1))  # a new stamp even on a coarse-clock file system
    assert content_tag(_sample(a / "x.png")) != before
    assert media_digest(a / "x.png") == media_digest(b"two")


def test_a_folder_digest_counts_frame_names_and_order(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "0.png").write_bytes(b"f0")
    (a / "1.png").write_bytes(b"f1")
    (b / "0.png").write_bytes(b"f1")  # same bytes, swapped frames
    (b / "1.png").write_bytes(b"f0")
    assert media_digest(a) != media_digest(b)
    assert media_digest(None) is None


def test_decoded_arrays_digest_by_dtype_shape_and_values():
    import numpy as np

    x = np.zeros((2, 3), dtype=np.uint8)
    assert media_digest(x) == media_digest(x.copy())
    assert media_digest(x) != media_digest(x.reshape(3, 2))
    assert media_digest(x) != media_digest(x.astype(np.float32))
