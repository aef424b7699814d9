"""Loaders: every format into one schema, labels, ids, lazy media."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmia.data import load_audio, load_dataset, load_image, load_video
from mmia.data.ids import content_id, stable_seed
from mmia.data.labels import UnknownLabel, parse_label
from mmia.errors import InputError
from tests.conftest import write_jsonl

ROWS = [
    {"id": "a", "text": "a red circle", "label": 1},
    {"id": "b", "text": "a blue square", "label": "nonmember"},
    {"id": "c", "prompt": "What is shown?", "answer": "a cat", "label": "true"},
]


@pytest.mark.parametrize(
    "value,expected",
    [(1, 1), (0, 0), (True, 1), (False, 0), ("1", 1), ("0", 0), ("TRUE", 1), ("false", 0),
     ("member", 1), ("Non-Member", 0), ("nonmember", 0), (1.0, 1), (0.0, 0), (None, None), ("", None),
     (float("nan"), None)],
)
def test_parse_label_known(value, expected):
    assert parse_label(value) == expected


@pytest.mark.parametrize("value", [2, "maybe", -1, 0.5, "members"])
def test_parse_label_unknown(value):
    with pytest.raises(UnknownLabel):
        parse_label(value)


def _check_rows(ds):
    assert [s.id for s in ds] == ["a", "b", "c"]
    assert ds.labels().tolist() == [1, 0, 1]
    assert ds[0].text == "a red circle" and ds[0].full_text == "a red circle"
    assert ds[2].prompt == "What is shown?" and ds[2].answer == "a cat"
    assert ds[2].full_text == "What is shown? a cat"
    assert ds.n_members == 2 and ds.n_nonmembers == 1


def test_jsonl_csv_parquet_hf_agree(tmp_path):
    _check_rows(load_dataset(write_jsonl(tmp_path / "d.jsonl", ROWS)))
    df = pd.DataFrame(ROWS)
    df["label"] = df["label"].astype(str)
    df.to_csv(tmp_path / "d.csv", index=False)
    _check_rows(load_dataset(tmp_path / "d.csv"))
    df.to_parquet(tmp_path / "d.parquet")
    _check_rows(load_dataset(tmp_path / "d.parquet"))
    import datasets

    datasets.Dataset.from_pandas(df).save_to_disk(str(tmp_path / "hf"))
    _check_rows(load_dataset(tmp_path / "hf"))


def test_hf_dataset_dict_with_one_split_and_with_several(tmp_path):
    import datasets

    one = datasets.Dataset.from_list([{"text": "x", "label": 1}, {"text": "y", "label": 0}])
    datasets.DatasetDict({"train": one}).save_to_disk(str(tmp_path / "dd1"))
    assert len(load_dataset(tmp_path / "dd1")) == 2
    datasets.DatasetDict({"train": one, "test": one}).save_to_disk(str(tmp_path / "dd2"))
    with pytest.raises(InputError, match="several splits"):
        load_dataset(tmp_path / "dd2")


def test_hf_image_feature_as_bytes(tmp_path, media_dir):
    import datasets

    ds = datasets.Dataset.from_dict({"image": [str(media_dir / "img.png")], "text": ["t"], "label": [1]})
    ds = ds.cast_column("image", datasets.Image())
    ds.save_to_disk(str(tmp_path / "hfimg"))
    loaded = load_dataset(tmp_path / "hfimg")
    assert load_image(loaded[0].image).shape == (20, 30, 3)


def test_ids_are_stable_content_hashes(tmp_path):
    rows = [{"text": "same text", "label": 1}, {"text": "other", "label": 0}]
    a = load_dataset(write_jsonl(tmp_path / "a.jsonl", rows))
    b = load_dataset(write_jsonl(tmp_path / "b.jsonl", rows))
    assert a.ids == b.ids
    assert a.ids[0] == content_id({"text": "same text", "prompt": None, "answer": None})
    assert len(a.ids[0]) == 16
    assert a.ids[0] != a.ids[1]


def test_content_id_known_value():
    import hashlib

    expected = hashlib.sha256(json.dumps({"text": "hi"}, sort_keys=True).encode()).hexdigest()[:16]
    assert content_id({"text": "hi", "prompt": None}) == expected


def test_stable_seed_is_deterministic_across_processes():
    import subprocess
    import sys

    code = "from mmia.data.ids import stable_seed; print(stable_seed('abc', 3))"
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            for _ in range(2)}
    assert outs == {f"{stable_seed('abc', 3)}\n"}


def test_media_resolves_relative_to_data_file_and_loads_lazily(tmp_path, media_dir):
    rows = [
        {"id": "i", "text": "t", "image": "media/img.png", "label": 1},
        {"id": "g", "text": "t", "image": "media/gray.png", "label": 0},
        {"id": "a", "text": "t", "audio": "media/tone.wav", "label": 1},
        {"id": "v", "text": "t", "video": "media/clip", "label": 0},
        {"id": "w", "text": "t", "video": "media/anim.gif", "label": 0},
    ]
    ds = load_dataset(write_jsonl(tmp_path / "m.jsonl", rows))
    assert ds[0].image == (tmp_path / "media" / "img.png")
    img = load_image(ds[0].image)
    assert img.shape == (20, 30, 3) and img.dtype == np.uint8
    assert load_image(ds[1].image).shape == (8, 8, 3)  # greyscale becomes RGB
    assert load_image(ds[0].image, size=16).shape == (16, 16, 3)
    audio = load_audio(ds[2].audio, sampling_rate=16000)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - 16000) <= 1  # 1 s at 8 kHz resampled to 16 kHz
    frames = load_video(ds[3].video)
    assert frames.shape == (3, 6, 6, 3)
    assert frames[:, 0, 0, 0].tolist() == [20, 40, 200]  # natural order f1, f2, f10
    assert load_video(ds[4].video).shape[0] == 3
    assert load_video(ds[3].video, max_frames=2).shape[0] == 2
    assert ds.modalities == ("text", "image", "audio", "video")


def test_video_npy_loads_without_pickle(tmp_path):
    arr = np.zeros((4, 5, 5, 3), dtype=np.uint8)
    np.save(tmp_path / "v.npy", arr)
    assert load_video(Path(tmp_path / "v.npy")).shape == (4, 5, 5, 3)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="does not load"):
        load_video(Path(tmp_path / "obj.npy"))


def test_subset_and_summary(tmp_path):
    ds = load_dataset(write_jsonl(tmp_path / "d.jsonl", ROWS))
    sub = ds.subset([0, 2])
    assert sub.ids == ["a", "c"]
    assert ds.summary()["n_members"] == 2
