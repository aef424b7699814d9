"""Load a member/non-member file into typed samples, validating every row."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from mmia.data.ids import content_id
from mmia.data.labels import UnknownLabel, parse_label
from mmia.data.media import check_media
from mmia.data.readers import read_rows
from mmia.data.schema import MEDIA_FIELDS, Dataset, Sample, SkippedRow
from mmia.errors import InputError

KNOWN_COLUMNS = ("id", "text", "prompt", "answer", "image", "audio", "video", "label")
TEXT_FIELDS = ("text", "prompt", "answer")


class RowError(ValueError):
    """A problem with one row; becomes an InputError or, with skip_bad, a SkippedRow."""


def _media_ref(value, base: Path, field: str):
    """Resolve a media cell: a path relative to the data file, or datasets' {bytes, path} dict."""
    if isinstance(value, dict):
        if value.get("bytes"):
            return bytes(value["bytes"])
        value = value.get("path")
        if not value:
            raise RowError(f"'{field}' has neither bytes nor a path")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if not isinstance(value, str):
        raise RowError(f"'{field}' must be a path string, got {type(value).__name__}")
    p = Path(value).expanduser()
    if not p.is_absolute():
        p = base / p
    if not p.exists():
        raise RowError(f"{field} file not found: {p}")
    return p


def _to_sample(rec: dict, row: int, base: Path, check: bool) -> Sample:
    fields: dict = {}
    for key in TEXT_FIELDS:
        value = rec.get(key)
        if value is not None and not isinstance(value, str):
            raise RowError(f"'{key}' must be a string, got {type(value).__name__}")
        fields[key] = value
    if fields["text"] is not None and (fields["prompt"] is not None or fields["answer"] is not None):
        raise RowError("has both 'text' and 'prompt'/'answer'; use one form")
    if fields["prompt"] is not None and fields["answer"] is None:
        raise RowError("has a 'prompt' but no 'answer' (the answer is what the loss covers)")
    raw_media = {m: rec.get(m) for m in MEDIA_FIELDS}
    media = {m: _media_ref(v, base, m) for m, v in raw_media.items() if v is not None}
    if not any(fields.values()) and not media:
        raise RowError("has no text, prompt, answer, image, audio or video")
    for kind, ref in media.items():
        if check:
            try:
                check_media(ref, kind)
            except InputError as exc:
                raise RowError(exc.reason + (f": {ref}" if isinstance(ref, Path) else "")) from None
    try:
        label = parse_label(rec.get("label"))
    except UnknownLabel as exc:
        raise RowError(str(exc)) from None
    sid = rec.get("id")
    if sid is None or (isinstance(sid, str) and not sid.strip()):
        id_fields = dict(fields)
        for m, v in raw_media.items():
            if v is not None:
                id_fields[m] = (v.get("bytes") or v.get("path")) if isinstance(v, dict) else v
        sid = content_id(id_fields)
    elif isinstance(sid, (str, int)) and not isinstance(sid, bool):
        sid = str(sid)
    else:
        raise RowError(f"'id' must be a string or integer, got {type(sid).__name__}")
    return Sample(id=sid, row=row, label=label, **fields, **media)


def scan_samples(
    path: str | Path,
    *,
    skip_bad: bool = False,
    check_media_files: bool = True,
    ignore_columns: Sequence[str] = (),
) -> Iterator[Sample | SkippedRow]:
    """Stream a data file's rows as validated samples (or, with `skip_bad`, skipped rows), in file order.

    What `load_dataset` collects, one row at a time, so a caller can walk a large file holding
    nothing but what it keeps (the Ray engine keeps ids and labels, its workers read their own
    rows). Errors are those of `load_dataset`.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError("file not found", path)
    base = path if path.is_dir() else path.parent
    allowed = set(KNOWN_COLUMNS) | set(ignore_columns)
    seen: dict[str, int] = {}

    for row, rec in read_rows(path):
        try:
            if isinstance(rec, Exception):
                raise RowError(str(rec))
            unknown = [k for k in rec if k not in allowed]
            if unknown:
                # An unknown column is a file-level problem (a typo such as 'lable' would
                # otherwise silently drop the labels), so it is never skipped.
                raise InputError(
                    f"unknown column '{unknown[0]}' (known: {', '.join(KNOWN_COLUMNS)}); rename it, "
                    f"or ignore it with --ignore-column {unknown[0]}",
                    path,
                    row,
                )
            sample = _to_sample(rec, row, base, check_media_files)
            if sample.id in seen:
                raise RowError(f"duplicate id '{sample.id}' (first at row {seen[sample.id]})")
        except RowError as exc:
            if not skip_bad:
                raise InputError(str(exc), path, row) from None
            rid = rec.get("id") if isinstance(rec, dict) else None
            yield SkippedRow(row=row, reason=str(exc), id=None if rid is None else str(rid))
            continue
        seen[sample.id] = row
        yield sample


def load_dataset(
    path: str | Path,
    *,
    skip_bad: bool = False,
    check_media_files: bool = True,
    ignore_columns: Sequence[str] = (),
    require_labels: bool = False,
) -> Dataset:
    """Load a JSONL, CSV, Parquet file or `datasets.save_to_disk` directory.

    Raises `InputError` naming the file and row on the first bad row, unless `skip_bad`, in
    which case row-level problems (malformed rows, unknown labels, missing or undecodable media,
    duplicate ids) are recorded in `Dataset.skipped`. File-level problems (missing file,
    unknown column) always raise.
    """
    path = Path(path).expanduser()
    samples: list[Sample] = []
    skipped: list[SkippedRow] = []
    for item in scan_samples(path, skip_bad=skip_bad, check_media_files=check_media_files,
                             ignore_columns=ignore_columns):
        (samples if isinstance(item, Sample) else skipped).append(item)

    if not samples:
        raise InputError("holds no usable rows" + (f" ({len(skipped)} skipped)" if skipped else ""), path)
    ds = Dataset(path=path, samples=samples, skipped=skipped)
    if require_labels:
        ds.labels()
        if ds.n_members == 0 or ds.n_nonmembers == 0:
            raise InputError(
                f"needs both members and non-members (has {ds.n_members} members, "
                f"{ds.n_nonmembers} non-members)",
                path,
            )
    return ds
