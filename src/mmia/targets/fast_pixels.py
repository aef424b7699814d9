"""A vectorised stand-in for CLIP-style image processors, trusted only where checked.

Hugging Face image processors convert, resize, crop, rescale and normalise one image at a time
through PIL and numpy; for a small model that costs a sizeable part of a forward pass. When an
image already has the processor's output size, resizing and cropping are identities and what
is left is one affine map per channel, which this module applies to a whole batch at once with
the processor's own arithmetic (uint8 -> float64 * rescale_factor -> float32, then
(x - mean) / std in float32), tabulated for the 256 values a channel can take.

It is used for an image shape only after the processor's own output on real images of that
shape agreed with it (see `VisionLanguageTarget`); anything else goes through the processor.
"""

from __future__ import annotations

import numpy as np


class FastPixels:
    """Batch preprocessing of uint8 RGB arrays (H, W, 3) for a CLIP-style image processor."""

    def __init__(self, image_processor):
        ip = image_processor
        self.usable = _plain_pipeline(ip)
        if not self.usable:
            return
        # A uint8 pixel has 256 values: the processor's arithmetic on each, per channel, is a
        # lookup table, so the batch costs one gather per channel and no float64 arrays.
        v = np.arange(256, dtype=np.uint8).reshape(256, 1)
        self.passthrough = not getattr(ip, "do_rescale", False) and not getattr(ip, "do_normalize", False)
        if getattr(ip, "do_rescale", False):
            x = (v.astype(np.float64) * float(ip.rescale_factor)).astype(np.float32)  # the processor's rescale
        else:
            x = v.astype(np.float32)
        if getattr(ip, "do_normalize", False):
            x = (x - np.asarray(ip.image_mean, dtype=np.float32)) / np.asarray(ip.image_std, dtype=np.float32)
        self.table = np.ascontiguousarray(np.broadcast_to(x, (256, 3)).T)  # (3, 256) float32
        self._ip = ip

    def identity_shape(self, h: int, w: int) -> bool:
        """Whether resizing and cropping leave an (h, w) image as it is."""
        if not self.usable:
            return False
        ip = self._ip
        if getattr(ip, "do_resize", False):
            size = _size(ip.size)
            if size.get("shortest_edge") and not size.get("longest_edge") and len(size) == 1:
                if size["shortest_edge"] != min(h, w):
                    return False
            elif set(size) == {"height", "width"}:
                if (size["height"], size["width"]) != (h, w):
                    return False
            else:
                return False
        if getattr(ip, "do_center_crop", False):
            crop = _size(ip.crop_size)
            if set(crop) != {"height", "width"} or (crop["height"], crop["width"]) != (h, w):
                return False
        return True

    def __call__(self, arrays: list[np.ndarray]):
        """(B, 3, H, W) torch tensor (float32; uint8 if neither rescaled nor normalised) from
        same-shape uint8 (H, W, 3) arrays."""
        import torch

        x = np.stack(arrays)
        if self.passthrough:  # the processor keeps uint8 then
            return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        out = np.empty((x.shape[0], 3) + x.shape[1:3], dtype=np.float32)
        for c in range(3):
            np.take(self.table[c], x[..., c], out=out[:, c])
        return torch.from_numpy(out)


def _size(size) -> dict:
    """A processor's size setting (dict or SizeDict) as {key: value} of the keys that are set."""
    items = size.items() if hasattr(size, "items") else vars(size).items()
    return {k: v for k, v in items if v is not None}


def _plain_pipeline(ip) -> bool:
    """Whether the processor is the plain convert/resize/crop/rescale/normalise pipeline."""
    if ip is None or getattr(ip, "do_pad", False):
        return False
    needed = ("do_resize", "size", "do_center_crop", "do_rescale", "rescale_factor", "do_normalize")
    if not all(hasattr(ip, a) for a in needed):
        return False
    if getattr(ip, "do_normalize", False):
        mean, std = getattr(ip, "image_mean", None), getattr(ip, "image_std", None)
        if mean is None or std is None or np.size(mean) != 3 or np.size(std) != 3:
            return False
    # Processors that patchify or tile (Qwen2-VL, LLaVA-NeXT) have these; they are not plain.
    return not any(hasattr(ip, a) for a in ("patch_size", "merge_size", "image_grid_pinpoints", "temporal_patch_size"))
