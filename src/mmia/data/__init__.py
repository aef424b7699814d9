"""Ground floor: the sample schema, loaders, label parsing, ids and lazy media decoding."""

from mmia.data.loading import KNOWN_COLUMNS, load_dataset
from mmia.data.media import MediaError, load_audio, load_image, load_video
from mmia.data.schema import Dataset, Sample, SkippedRow

__all__ = [
    "KNOWN_COLUMNS",
    "Dataset",
    "MediaError",
    "Sample",
    "SkippedRow",
    "load_audio",
    "load_dataset",
    "load_image",
    "load_video",
]
