"""Tier 2, in process: with a mask that keeps 3/4 of the image, the tiled evaluation sends only the
changed quarter, its feather and the context margin through the real (tiny SD1.5) diffusion model,
counted by a DIFFUSION_MODEL wrapper, and the kept pixels come back exactly."""

from __future__ import annotations

import pytest
import torch
from comfy_sampling_helpers import ksample
from tiled_comfy_helpers import tiled_patch

pytestmark = pytest.mark.comfyui


def counted(model, calls):
    """A clone whose raw network calls record the input's (rows, h, w)."""
    import comfy.patcher_extension

    def count(executor, x, *args, **kwargs):
        calls.append((x.shape[0], x.shape[-2], x.shape[-1]))
        return executor(x, *args, **kwargs)

    m = model.clone()
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "count_area", count)
    return m


@pytest.mark.parametrize("mode", ["blend", "strength"])
def test_keeping_three_quarters_evaluates_a_quarter_plus_feather_and_margin(comfy, mode):
    from comfy_harness import tiny_sd15_model

    L, overlap_px = 32, 32  # 256 px image, latent 32; overlap 4 latent units (the margin)
    lat = torch.randn(1, 4, L, L, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(L * 8, L * 8)
    mask[: L * 4, : L * 4] = 1.0  # change the top-left quarter
    sd15 = tiny_sd15_model(seed=0)
    stock_calls, tiled_calls = [], []
    ksample(counted(sd15, stock_calls), lat, steps=3, denoise=0.6)
    kw = {
        "min_denoise": 0.0,
        "max_denoise": 1.0,
        "scale_mode": "mask",
        "denoise_mask": mask,
        "tile_width": 192,
        "tile_height": 192,
        "overlap": overlap_px,
        "tiled_model": True,
        "tile_batch_size": 4,
        "mode": mode,
    }
    out = ksample(tiled_patch(counted(sd15, tiled_calls), lat, **kw), lat, steps=3, denoise=0.6)
    stock = sum(b * h * w for b, h, w in stock_calls)
    tiled = sum(b * h * w for b, h, w in tiled_calls)
    # 2x2 tiles of 18 units; the top-left one owns the changed quarter (16 units), its scale feathers out to
    # its edge (16 + half the overlap), and the margin (the overlap, 4 units) is the context around that
    side = L // 2 + 2 + 4
    assert 0 < tiled <= stock * (side / L) ** 2
    assert all(h <= 24 and w <= 24 for _, h, w in tiled_calls)  # never larger than the user's 192 px tiles
    kept = torch.ones(L, L, dtype=torch.bool)
    kept[: L // 2 + 2, : L // 2 + 2] = False
    assert float((out - lat)[..., kept].abs().max()) <= 1e-5
    assert float((out - lat)[..., : L // 2, : L // 2].abs().max()) > 1e-2
