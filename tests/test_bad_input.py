"""Every bad-input case: one clear line naming file and row, exit status 2, no traceback."""

import subprocess
import sys

import pytest

from mmia.data import load_dataset
from mmia.errors import InputError
from tests.conftest import write_jsonl


def run_cli(*args):
    proc = subprocess.run([sys.executable, "-m", "mmia.cli", *map(str, args)], capture_output=True, text=True)
    return proc.returncode, proc.stdout, proc.stderr


def assert_one_line_error(rc, err, expected):
    assert rc == 2, err
    assert "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0] == expected, lines[0]


def assert_inspect_fails(path, expected):
    """`mmia inspect path` fails with the one line `expected`."""
    rc, _, err = run_cli("inspect", path)
    assert_one_line_error(rc, err, expected)


GOOD = {"id": "ok", "text": "fine", "label": 1}


def test_missing_file(tmp_path):
    p = tmp_path / "nope.jsonl"
    assert_inspect_fails(p, f"error: {p}: file not found")


def test_malformed_json_row(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [GOOD, '{"text": "broken", ', {"text": "x", "label": 0}])
    assert_inspect_fails(
        p, f"error: {p}, row 2: malformed row: not valid JSON (Expecting property name enclosed in "
        "double quotes at column 20)"
    )


def test_row_not_an_object(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [GOOD, "[1, 2]"])
    assert_inspect_fails(p, f"error: {p}, row 2: malformed row: a JSON list, not an object")


def test_csv_row_with_wrong_field_count(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("id,text,label\na,hello,1\nb,too,many,fields\n", encoding="utf-8")
    assert_inspect_fails(p, f"error: {p}, row 2: malformed row: 4 fields, the header has 3")


def test_unknown_label(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [GOOD, {"id": "x", "text": "t", "label": "maybe"}])
    assert_inspect_fails(
        p, f"error: {p}, row 2: unknown label 'maybe' (expected 1/0, true/false or member/nonmember)"
    )


def test_unknown_column(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [GOOD, {"id": "x", "text": "t", "lable": 1}])
    assert_inspect_fails(
        p,
        f"error: {p}, row 2: unknown column 'lable' (known: id, text, prompt, answer, image, audio, video, "
        "label); rename it, or ignore it with --ignore-column lable",
    )
    rc, out, err = run_cli("inspect", p, "--ignore-column", "lable")
    assert rc == 0, err


def test_unknown_column_is_not_skippable(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [GOOD, {"id": "x", "text": "t", "lable": 1}])
    rc, _, err = run_cli("inspect", p, "--skip-bad")
    assert rc == 2 and "unknown column 'lable'" in err


def test_media_that_does_not_decode(tmp_path, media_dir):
    p = write_jsonl(tmp_path / "d.jsonl", [GOOD, {"id": "x", "text": "t", "image": "media/broken.png", "label": 0}])
    rc, _, err = run_cli("inspect", p)
    assert rc == 2 and "Traceback" not in err
    assert err.startswith(f"error: {p}, row 2: image does not decode (")
    assert err.rstrip().endswith(f": {media_dir / 'broken.png'}")
    assert len(err.strip().splitlines()) == 1


def test_audio_that_does_not_decode(tmp_path, media_dir):
    p = write_jsonl(tmp_path / "d.jsonl", [{"id": "x", "text": "t", "audio": "media/broken.wav", "label": 0}])
    rc, _, err = run_cli("inspect", p)
    assert rc == 2 and err.startswith(f"error: {p}, row 1: audio does not decode (")


def test_video_file_that_does_not_decode(tmp_path, media_dir):
    p = write_jsonl(tmp_path / "d.jsonl", [GOOD, {"id": "x", "text": "t", "video": "media/broken.mp4", "label": 0}])
    assert_inspect_fails(p, f"error: {p}, row 2: video does not decode (Invalid data found when processing "
                                   f"input): {media_dir / 'broken.mp4'}")


def test_missing_media_file(tmp_path, media_dir):
    p = write_jsonl(tmp_path / "d.jsonl", [GOOD, {"id": "x", "text": "t", "image": "media/gone.png"}])
    assert_inspect_fails(p, f"error: {p}, row 2: image file not found: {media_dir / 'gone.png'}")


def test_not_utf8(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_bytes(b'{"text": "ok", "label": 1}\n{"text": "\xff\xfe bad", "label": 0}\n')
    assert_inspect_fails(p, f"error: {p}, row 2: is not UTF-8 text")


def test_not_parquet(tmp_path):
    p = tmp_path / "d.parquet"
    p.write_bytes(b"this is not parquet")
    rc, _, err = run_cli("inspect", p)
    assert rc == 2 and err.startswith(f"error: {p}: cannot read as Parquet (")


def test_unsupported_type_and_empty_file(tmp_path):
    p = tmp_path / "d.txt"
    p.write_text("hello")
    assert_inspect_fails(
        p,
        f"error: {p}: unsupported file type '.txt' (use .jsonl, .csv, .parquet or a datasets save_to_disk directory)",
    )
    e = tmp_path / "empty.jsonl"
    e.write_text("")
    rc, _, err = run_cli("inspect", e)
    assert_one_line_error(rc, err, f"error: {e}: holds no usable rows")


def test_row_without_content_and_wrong_types(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [GOOD, {"id": "x", "label": 1}])
    assert_inspect_fails(p, f"error: {p}, row 2: has no text, prompt, answer, image, audio or video")
    p = write_jsonl(tmp_path / "e.jsonl", [{"id": "x", "text": 5}])
    assert_inspect_fails(p, f"error: {p}, row 1: 'text' must be a string, got int")
    p = write_jsonl(tmp_path / "f.jsonl", [{"prompt": "q?"}])
    assert_inspect_fails(
        p, f"error: {p}, row 1: has a 'prompt' but no 'answer' (the answer is what the loss covers)"
    )


def test_duplicate_ids(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [GOOD, {"id": "ok", "text": "again", "label": 0}])
    assert_inspect_fails(p, f"error: {p}, row 2: duplicate id 'ok' (first at row 1)")


def test_skip_bad_skips_and_lists(tmp_path, media_dir):
    rows = [
        GOOD,
        '{"broken json',
        {"id": "lab", "text": "t", "label": "perhaps"},
        {"id": "img", "text": "t", "image": "media/broken.png", "label": 0},
        {"id": "fine2", "text": "t2", "label": 0},
    ]
    p = write_jsonl(tmp_path / "d.jsonl", rows)
    ds = load_dataset(p, skip_bad=True)
    assert ds.ids == ["ok", "fine2"]
    assert [(s.row, s.id) for s in ds.skipped] == [(2, None), (3, "lab"), (4, "img")]
    assert "not valid JSON" in ds.skipped[0].reason and "unknown label" in ds.skipped[1].reason
    rc, out, err = run_cli("inspect", p, "--skip-bad")
    assert rc == 0, err
    assert "skipped row 3: unknown label 'perhaps'" in out


def test_labels_required_for_evaluation(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": 1}, {"text": "b"}])
    with pytest.raises(InputError, match=r"1 row\(s\) have no label \(first: row 2\)"):
        load_dataset(p, require_labels=True)
    p = write_jsonl(tmp_path / "e.jsonl", [{"text": "a", "label": 1}, {"text": "b", "label": 1}])
    with pytest.raises(InputError, match="needs both members and non-members"):
        load_dataset(p, require_labels=True)


def test_csv_not_utf8_names_the_row(tmp_path):
    p = tmp_path / "d.csv"
    p.write_bytes("\ufeffid,text,label\na,ok,1\n".encode() + b"b,\xff bad,0\n")
    assert_inspect_fails(p, f"error: {p}, row 2: is not UTF-8 text")
