"""Image in, image out: regional VAE passes and the exact stitch (pure torch; ComfyUI glue: nodes/refine.py).

- `regions`: which latent each VAE pass reads and writes (the decoder: the changed pixels; the model: the
  hook's windows; the encoder: what those two read), tile by tile with context margins.
- `passes`: running a VAE's encode / decode on those tiles only, feathered where tiles overlap.
- `stitch`: the decoded picture's weight (0 where nothing changed, a smooth band inside the change, 1
  beyond) and the blend that keeps every other pixel bit for bit.
"""

from .passes import decode_regional, encode_regional
from .regions import (
    DECODE_CONTEXT,
    ENCODE_CONTEXT,
    VAE_OVERLAP,
    VAE_TILE,
    VaePass,
    changed_cells,
    encode_needed,
    model_region,
    vae_pass,
)
from .stitch import band_weight, stitch

__all__ = [
    "DECODE_CONTEXT",
    "ENCODE_CONTEXT",
    "VAE_OVERLAP",
    "VAE_TILE",
    "VaePass",
    "band_weight",
    "changed_cells",
    "decode_regional",
    "encode_needed",
    "encode_regional",
    "model_region",
    "stitch",
    "vae_pass",
]
