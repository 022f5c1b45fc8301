"""How much the regional VAE passes of SoluneRefine / SoluneStitch differ from whole-image passes.

    COMFYUI_PATH=/path/to/ComfyUI python bench/measure_regional_vae.py [--vae FILE] [--size 512] [--context 8]

Encodes and decodes a picture whole and region by region (the changed region: a centred square of half
the side; `solune.image` tiles and context margins, as the nodes use them) and prints, in 8-bit levels,
the largest and mean difference of the regional decode from the whole decode over the decoded pixels,
by distance from the region's edge. Without --vae it uses a random-weight VAE with the full SD layout
(what the tests use); with --vae a VAE file of yours (e.g. vae-ft-mse-840000-ema-pruned.safetensors).
Outside the changed region there is nothing to measure: those pixels are the input's. `--context` (latent
cells, default the nodes' own) sets both passes' context, to see what a smaller one would change.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vae", help="a VAE file (default: random weights, full SD layout)")
    parser.add_argument("--size", type=int, default=512, help="picture side in pixels (multiple of 64)")
    parser.add_argument("--context", type=int, help="both passes' context, latent cells (default: the nodes' own)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from comfy_harness import import_comfy

    comfy, why = import_comfy()
    if comfy is None:
        print(why, file=sys.stderr)
        return 2
    import comfy.sd
    import comfy.utils
    import torch
    from refine_helpers import picture, sd_vae

    from solune.image import DECODE_CONTEXT, ENCODE_CONTEXT, decode_regional, encode_regional, vae_pass

    vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(args.vae)) if args.vae else sd_vae()
    n = args.size
    image = picture(n, n, seed=11)
    h = n // 8
    region = torch.zeros(h, h, dtype=torch.bool)
    region[h // 4 : 3 * h // 4, h // 4 : 3 * h // 4] = True
    dec_context = DECODE_CONTEXT if args.context is None else args.context
    enc_context = ENCODE_CONTEXT if args.context is None else args.context
    with torch.inference_mode():
        whole_latent = vae.encode(image).cpu().float()
        whole = vae.decode(whole_latent).cpu().float()
        dec = vae_pass(region, context=dec_context)
        enc = vae_pass(dec.read_map(), context=enc_context)
        latent = encode_regional(image, enc, lambda p: vae.encode(p).cpu().float(), 8, int(vae.latent_channels))
        regional = decode_regional(latent, dec, lambda z: vae.decode(z).cpu().float(), 8)
        regional_same_latent = decode_regional(whole_latent, dec, lambda z: vae.decode(z).cpu().float(), 8)
    px = region.repeat_interleave(8, 0).repeat_interleave(8, 1)
    ys, xs = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    lo, hi = n // 4, 3 * n // 4
    depth = torch.minimum(torch.minimum(ys - lo, hi - 1 - ys), torch.minimum(xs - lo, hi - 1 - xs))
    print(
        f"picture {n}×{n}, changed region {n // 2}×{n // 2} in the centre, context: decode {8 * dec_context} px, "
        f"encode {8 * enc_context} px (the encode read {enc.read_area() / (h * h):.2f} of the picture); 8-bit levels"
    )
    print("band (px from the edge) | encode+decode regional vs whole: max, mean | decode only: max, mean")
    for a, b in ((0, 8), (8, 16), (16, 32), (32, 64), (64, n)):
        sel = px & (depth >= a) & (depth < b)
        if not bool(sel.any()):
            continue
        d1 = (regional[0][sel] - whole[0][sel]).abs() * 255
        d2 = (regional_same_latent[0][sel] - whole[0][sel]).abs() * 255
        print(
            f"{a:>4}–{min(b, n):<4} | {float(d1.max()):6.2f} {float(d1.mean()):6.3f} | {float(d2.max()):6.2f} "
            f"{float(d2.mean()):6.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
