"""Row readers for each supported file format, yielding (row number, dict) pairs.

Row numbers are 1-based: for JSONL the line number in the file, for CSV the data row (the
header is row 0), for Parquet and `datasets` directories the record index plus one.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from mmia.errors import InputError

FORMATS = ("jsonl", "csv", "parquet", "hf")


def detect_format(path: Path) -> str:
    if path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "state.json").exists() or (
            path / "dataset_dict.json"
        ).exists():
            return "hf"
        raise InputError(
            "is a directory but not one written by datasets' save_to_disk "
            "(no dataset_info.json/state.json/dataset_dict.json)",
            path,
        )
    suffix = "".join(path.suffixes[-1:]).lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise InputError(f"unsupported file type '{suffix or '(none)'}' (use .jsonl, .csv, .parquet "
                     "or a datasets save_to_disk directory)", path)


def read_rows(path: Path) -> Iterator[tuple[int, dict | Exception]]:
    """Yield (row, record) or (row, exception) for a malformed row, so callers may skip it."""
    fmt = detect_format(path)
    if fmt == "jsonl":
        yield from _read_jsonl(path)
    elif fmt == "csv":
        yield from _read_csv(path)
    elif fmt == "parquet":
        yield from _read_parquet(path)
    else:
        yield from _read_hf(path)


def _open_binary(path: Path):
    try:
        return open(path, "rb")
    except OSError as exc:
        raise InputError(f"cannot open ({exc.strerror})", path) from None


def _decoded_lines(fh):
    # Decode line by line (not in buffered chunks) so a bad byte is reported on its own row.
    for i, raw in enumerate(fh):
        yield raw.decode("utf-8-sig" if i == 0 else "utf-8")


def _read_jsonl(path: Path):
    with _open_binary(path) as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError:
                raise InputError("is not UTF-8 text", path, lineno) from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line.rstrip("\r\n"))
            except json.JSONDecodeError as exc:
                yield lineno, ValueError(f"malformed row: not valid JSON ({exc.msg} at column {exc.colno})")
                continue
            if not isinstance(obj, dict):
                yield lineno, ValueError(f"malformed row: a JSON {type(obj).__name__}, not an object")
                continue
            yield lineno, obj


def _read_csv(path: Path):
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with _open_binary(path) as fh:
        reader = csv.reader(_decoded_lines(fh), delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            return
        except (UnicodeDecodeError, csv.Error) as exc:
            raise InputError(f"unreadable header ({exc})", path, 0) from None
        header = [h.strip() for h in header]
        row = 0
        while True:
            row += 1
            try:
                values = next(reader)
            except StopIteration:
                break
            except UnicodeDecodeError:
                raise InputError("is not UTF-8 text", path, row) from None
            except csv.Error as exc:
                yield row, ValueError(f"malformed row: {exc}")
                continue
            if not values or all(not v.strip() for v in values):
                continue
            if len(values) != len(header):
                yield row, ValueError(f"malformed row: {len(values)} fields, the header has {len(header)}")
                continue
            # CSV has no null: an empty cell means "absent".
            yield row, {k: (v if v != "" else None) for k, v in zip(header, values, strict=True)}


def _read_parquet(path: Path):
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...
        raise InputError(f"cannot read as Parquet ({exc})", path) from None
    row = 0
    for batch in pf.iter_batches(batch_size=4096):
        for rec in batch.to_pylist():
            row += 1
            yield row, rec


def _read_hf(path: Path):
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a dependency
        raise InputError("reading a save_to_disk directory needs the 'datasets' package", path) from None
    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as exc:
        raise InputError(f"cannot read as a datasets directory ({exc})", path) from None
    if isinstance(ds, datasets.DatasetDict):
        splits = list(ds.keys())
        if len(splits) != 1:
            raise InputError(
                f"holds several splits ({', '.join(splits)}); point at one split's folder, e.g. {path}/{splits[0]}",
                path,
            )
        ds = ds[splits[0]]
    # Media columns as raw bytes/paths, decoded lazily by mmia.data.media.
    for name, feat in ds.features.items():
        if feat.__class__.__name__ in ("Image", "Audio", "Video") and getattr(feat, "decode", False):
            ds = ds.cast_column(name, feat.__class__(decode=False))
    for i, rec in enumerate(ds):
        yield i + 1, rec
