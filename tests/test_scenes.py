import json

import numpy as np
import pytest

from mmia.data import load_dataset
from mmia.testbeds.manifest import tree_hash
from mmia.testbeds.scenes import (
    CAPTION_PROMPTS,
    MATCHED,
    SHIFTED,
    render_scene,
    sample_scene,
    scene_stream,
    write_scenes_split,
)


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_split_is_deterministic_and_seed_dependent(tmp_path):
    a = write_scenes_split(tmp_path / "a", "matched", n_members=12, n_nonmembers=12, seed=3)
    b = write_scenes_split(tmp_path / "b", "matched", n_members=12, n_nonmembers=12, seed=3)
    c = write_scenes_split(tmp_path / "c", "matched", n_members=12, n_nonmembers=12, seed=4)
    assert a.read_bytes() == b.read_bytes()
    assert tree_hash(a.parent) == tree_hash(b.parent)
    assert tree_hash(a.parent) != tree_hash(c.parent)
    assert not set(r["id"] for r in _rows(a)) & set(r["id"] for r in _rows(c))


def test_split_loads_in_contract_format(tmp_path):
    path = write_scenes_split(tmp_path, "shifted", n_members=10, n_nonmembers=8, seed=0)
    ds = load_dataset(path, require_labels=True)
    assert (ds.n_members, ds.n_nonmembers) == (10, 8)
    assert set(_rows(path)[0]) == {"id", "image", "prompt", "answer", "label"}
    assert all(s.image.exists() and s.prompt and s.answer for s in ds)
    # Rows are shuffled: members are not simply first.
    labels = [r["label"] for r in _rows(path)]
    assert labels != sorted(labels, reverse=True)


def test_members_are_shared_across_splits_and_counts(tmp_path):
    m = write_scenes_split(tmp_path, "matched", n_members=6, n_nonmembers=6, seed=1)
    s = write_scenes_split(tmp_path, "shifted", n_members=9, n_nonmembers=6, seed=1)
    mem_m = {r["id"]: r for r in _rows(m) if r["label"] == 1}
    mem_s = {r["id"]: r for r in _rows(s) if r["label"] == 1}
    assert set(mem_m) < set(mem_s)
    assert all(mem_m[i] == mem_s[i] for i in mem_m)
    non_m = {r["id"] for r in _rows(m) if r["label"] == 0}
    non_s = {r["id"] for r in _rows(s) if r["label"] == 0}
    assert not non_m & non_s and not (non_m | non_s) & set(mem_s)


def test_video_rows_are_frame_folders(tmp_path):
    path = write_scenes_split(tmp_path, "matched", n_members=3, n_nonmembers=3, seed=0, video=True)
    ds = load_dataset(path)
    from mmia.data.media import load_video

    frames = load_video(ds[0].video)
    assert frames.shape == (8, 64, 64, 3)
    assert not np.array_equal(frames[0], frames[-1])  # something moves
    assert "video" in _rows(path)[0] and "image" not in _rows(path)[0]


def test_shifted_setting_is_visibly_different():
    # Mean brightness of shifted scenes (dark backgrounds) is far below the default's.
    def brightness(settings, stream):
        recs = scene_stream(0, stream, 30, settings)
        return np.mean([render_scene(r.scene)[0].mean() for r in recs])

    assert brightness(MATCHED, "x") - brightness(SHIFTED, "y") > 60


def test_text_varies_and_follows_the_scene():
    recs = scene_stream(0, "member", 300)
    answers = [r.answer for r in recs]
    assert len(set(answers)) > 250
    captions = [r for r in recs if r.prompt in CAPTION_PROMPTS]
    assert len(captions) > 120
    # Every caption names each object's colour and shape.
    for r in captions[:50]:
        for o in r.scene.objects:
            assert o.colour in r.answer and o.shape in r.answer, (r.answer, o)


def test_scene_and_image_sizes():
    s = sample_scene(123)
    assert 1 <= s.n_objects <= 4
    img = render_scene(s, image_size=96)[0]
    assert img.shape == (96, 96, 3) and img.dtype == np.uint8
    with pytest.raises(ValueError):
        write_scenes_split(None, "matched", n_members=1, n_nonmembers=1, seed=0, image_size=32)
    with pytest.raises(ValueError):
        write_scenes_split(None, "other", n_members=1, n_nonmembers=1, seed=0)


def _blind_auc(path):
    """Cross-validated AUC of a simple blind classifier (word counts + mean colours), no model."""
    from PIL import Image
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    rows = _rows(path)
    y = np.array([r["label"] for r in rows])
    texts = [r["prompt"] + " " + r["answer"] for r in rows]
    colour = np.array([np.asarray(Image.open(path.parent / r["image"]), dtype=float).reshape(-1, 3).mean(0) / 255
                       for r in rows])
    scores = np.zeros(len(rows))
    for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(texts, y):
        vec = CountVectorizer().fit([texts[i] for i in train])  # fit inside the fold only

        def feats(idx, vec=vec):
            return hstack([vec.transform([texts[i] for i in idx]), colour[idx]]).tocsr()

        clf = LogisticRegression(max_iter=2000).fit(feats(train), y[train])
        scores[test] = clf.predict_proba(feats(test))[:, 1]
    return roc_auc_score(y, scores)


def test_blind_classifier_is_at_chance_on_matched_and_wins_on_shifted(tmp_path):
    matched = write_scenes_split(tmp_path, "matched", n_members=150, n_nonmembers=150, seed=0)
    shifted = write_scenes_split(tmp_path, "shifted", n_members=150, n_nonmembers=150, seed=0)
    assert abs(_blind_auc(matched) - 0.5) < 0.1
    assert _blind_auc(shifted) > 0.95
