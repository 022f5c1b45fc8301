"""Benchmark (not a test): Solune Refine and the hook + Solune Stitch beside the stock masked img2img,
Inpaint Crop & Stitch and Ultimate SD Upscale, from LoadImage to SaveImage in ONE real ComfyUI on the CPU.

    python bench/bench_refine_peers.py --comfyui ~/ComfyUI \\
        --crop-and-stitch /path/to/ComfyUI-Inpaint-CropAndStitch \\
        --usdu /path/to/ComfyUI_UltimateSDUpscale [--size 1024] [--repeats 1] [--out refine_peers.json]
    python bench/bench_refine_peers.py --table refine_peers.json

Run it with ComfyUI's Python. The peers' checkouts are linked into the benchmark server's custom_nodes
at run time (nothing of theirs is copied into Solune); Ultimate SD Upscale needs its submodule
(Coyote-A/ultimate-upscale-for-automatic1111) checked out in repositories/ultimate_sd_upscale, since the
server cannot download it. Models: the tiny random-weight SD1.5 UNet and CLIP of tests/comfy_harness.py
and a random-weight VAE with the FULL SD layout (tests/refine_helpers.py), so the VAE costs what a real
one does. Sampling: euler, normal, `--steps` 4, denoise 0.5, cfg 7, the same for every pipeline.

Groups (one per mask, `--size`² picture, masks as PNGs through LoadImageMask; 1 = change):
"no mask" (everything changes), "kept 0.75" (top-left quarter changes), "kept 0.5" (left half),
"kept 0.25" (all but the bottom-right quarter), "two corners" (two squares of size/8 in opposite
corners, so one crop spans the picture). Pipelines per group:

* stock: VAEEncode → SetLatentNoiseMask → KSampler → VAEDecode (no SetLatentNoiseMask without a mask);
* Solune Refine: SoluneRefine (scale_mode pixel, min 0, max 1: the scale follows the mask; uniform 1
  without a mask), tiles 512/64;
* hook + Stitch: VAEEncode → SoluneTiledImg2Img (same settings) → KSampler → SoluneStitch;
* Crop & Stitch: InpaintCropImproved (context factor `--cs-context`, default the issue's 1.2, no resize,
  padding 8, blend = `--blend`, cpu)
  → VAEEncode → SetLatentNoiseMask → KSampler → VAEDecode → InpaintStitchImproved (an all-1 mask for
  "no mask").

And the 2× upscale of a (`--size`/2)² picture to `--size`²: stock = ImageScaleBy bicubic 2 → VAEEncode →
KSampler → VAEDecode; Solune Refine upscale_by 2 (its bicubic resample, scale uniform 1, tiles 512/64);
Ultimate SD Upscale (No Upscale) after the same ImageScaleBy, tiles 512 + padding 32, linear, no seam
fix, batch 1. Neither uses an upscale model.

Reported: the server's own execution time as a ratio to the stock pipeline of the same group (run
just before it), the peak RSS added (bench_peers.measure), and, in the saved 8-bit PNG against the input
PNG, the largest change (0..255) and the share of pixels changed where the mask is 0 and at least
`--keep-margin` pixels (default 2 × blend) from any masked pixel. Every prompt reads its own copy of the
picture (a new file name), so nothing a prompt before it computed is reused from ComfyUI's cache.
`--size` scales the picture, the masks, tiles and overlaps together (named at 1024² in the table).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import bench_peers
from bench_peers import REPO, SIZE, measure, px, start_server

log = logging.getLogger(__name__)
VAE_FILE = "tiny_sd_vae.safetensors"
MASKS = ("no mask", "kept 0.75", "kept 0.5", "kept 0.25", "two corners")
PIPELINES = ("stock", "Solune Refine", "hook + Stitch", "Crop & Stitch")
UPSCALE = ("stock 2×", "Solune Refine 2×", "Ultimate SD Upscale 2×")

TILING = {  # bench_peers' tile settings, with a per-pixel scale (kept pixels exact) at this bench's tiles
    **bench_peers.TILING,
    "scale_mode": "pixel",
    "tile_width": 512,
    "tile_height": 512,
}
UNIFORM = {"scale_mode": "uniform", "min_denoise": 1.0, "max_denoise": 1.0}


def mask_array(name: str, size: int):
    """The mask of `name` as a uint8 array [size, size] (255 = change), or None for "no mask"."""
    import numpy as np

    if name == "no mask":
        return None
    m, half = np.zeros((size, size), np.uint8), size // 2
    if name == "kept 0.75":
        m[:half, :half] = 255
    elif name == "kept 0.5":
        m[:, :half] = 255
    elif name == "kept 0.25":
        m[:] = 255
        m[half:, half:] = 0
    elif name == "two corners":
        a, s = px(64, size), px(128, size)
        m[a : a + s, a : a + s] = 255
        m[size - a - s : size - a, size - a - s : size - a] = 255
    else:
        raise ValueError(name)
    return m


def kept_region(mask, margin: int):
    """Pixels where the mask is 0 and no masked pixel lies within `margin` (square neighbourhood, so at
    least `margin` away in any metric)."""
    import torch

    changed = torch.from_numpy(mask > 0).float()[None, None]
    grown = torch.nn.functional.max_pool2d(changed, 2 * margin + 1, stride=1, padding=margin) if margin else changed
    return (grown[0, 0] == 0).numpy()


def prepare(size: int):
    """What the benchmark server needs besides the tiny models: the full-layout SD VAE and the mask PNGs."""

    def run(base: Path) -> None:
        import comfy.utils
        from PIL import Image
        from refine_helpers import sd_vae_state_dict

        comfy.utils.save_torch_file(
            {k: v.half() for k, v in sd_vae_state_dict().items()}, str(base / "models" / "vae" / VAE_FILE)
        )
        (base / "input").mkdir(exist_ok=True)
        for name in MASKS[1:]:
            m = mask_array(name, size)
            Image.fromarray(m).convert("RGB").save(base / "input" / f"mask_{name.replace(' ', '_')}.png")

    return run


def graph(pipeline: str, mask: str | None, picture: str, seed: int, args) -> dict:
    """The API prompt of one pipeline: LoadImage(picture) → … → SaveImage (node "out")."""
    from comfy_harness import tiny_sd15_prompt_nodes

    g = tiny_sd15_prompt_nodes("a lake at dawn", vae=False)
    g["5"] = {"class_type": "VAELoader", "inputs": {"vae_name": VAE_FILE}}
    g["img"] = {"class_type": "LoadImage", "inputs": {"image": picture}}
    image, vae, model, cond = ["img", 0], ["5", 0], ["1", 0], {"positive": ["3", 0], "negative": ["4", 0]}
    sampling = {
        "seed": seed,
        "steps": args.steps,
        "cfg": args.cfg,
        "sampler_name": "euler",
        "scheduler": "normal",
        "denoise": args.denoise,
    }
    geometry = {"tile_width": px(512, args.size), "tile_height": px(512, args.size), "overlap": px(64, args.size)}
    tiling = {**TILING, **geometry, **(UNIFORM if mask is None else {})}
    masked = {}
    if mask is not None:
        g["mask"] = {
            "class_type": "LoadImageMask",
            "inputs": {"image": f"mask_{mask.replace(' ', '_')}.png", "channel": "red"},
        }
        masked = {"denoise_mask": ["mask", 0]}
    if pipeline.endswith("2×"):
        if pipeline != "Solune Refine 2×":
            g["up"] = {
                "class_type": "ImageScaleBy",
                "inputs": {"image": image, "upscale_method": "bicubic", "scale_by": 2.0},
            }
            image = ["up", 0]
        pipeline = pipeline[:-3]

    def ksampler(model, latent):
        return {"class_type": "KSampler", "inputs": {"model": model, "latent_image": latent, **cond, **sampling}}

    if pipeline == "stock":
        g["enc"] = {"class_type": "VAEEncode", "inputs": {"pixels": image, "vae": vae}}
        latent = ["enc", 0]
        if mask is not None:
            g["noise_mask"] = {"class_type": "SetLatentNoiseMask", "inputs": {"samples": latent, "mask": ["mask", 0]}}
            latent = ["noise_mask", 0]
        g["ks"] = ksampler(model, latent)
        g["dec"] = {"class_type": "VAEDecode", "inputs": {"samples": ["ks", 0], "vae": vae}}
        result = ["dec", 0]
    elif pipeline == "Solune Refine":
        upscale_by = 2.0 if "up" not in g and args.upscale_group else 1.0
        g["refine"] = {
            "class_type": "SoluneRefine",
            "inputs": {
                "image": image,
                "model": model,
                "vae": vae,
                **cond,
                **sampling,
                **tiling,
                **masked,
                "upscale_by": upscale_by,
                "blend": args.blend,
            },
        }
        result = ["refine", 0]
    elif pipeline == "hook + Stitch":
        g["enc"] = {"class_type": "VAEEncode", "inputs": {"pixels": image, "vae": vae}}
        g["hook"] = {
            "class_type": "SoluneTiledImg2Img",
            "inputs": {"model": model, "latent": ["enc", 0], **tiling, **masked},
        }
        g["ks"] = ksampler(["hook", 0], ["enc", 0])
        g["stitch"] = {
            "class_type": "SoluneStitch",
            "inputs": {"samples": ["ks", 0], "vae": vae, "image": image, "scale": ["hook", 2], "blend": args.blend},
        }
        result = ["stitch", 0]
    elif pipeline == "Crop & Stitch":
        if mask is None:
            g["all"] = {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": args.size, "height": args.size}}
        g["crop"] = {
            "class_type": "InpaintCropImproved",
            "inputs": {
                "image": image,
                "mask": ["mask" if mask is not None else "all", 0],
                "downscale_algorithm": "bilinear",
                "upscale_algorithm": "bicubic",
                "preresize": False,
                "preresize_mode": "ensure minimum resolution",
                "preresize_min_width": 1024,
                "preresize_min_height": 1024,
                "preresize_max_width": 16384,
                "preresize_max_height": 16384,
                "mask_fill_holes": True,
                "mask_expand_pixels": 0,
                "mask_invert": False,
                "mask_blend_pixels": args.blend,
                "mask_hipass_filter": 0.1,
                "extend_for_outpainting": False,
                "extend_up_factor": 1.0,
                "extend_down_factor": 1.0,
                "extend_left_factor": 1.0,
                "extend_right_factor": 1.0,
                "context_from_mask_extend_factor": args.cs_context,
                "output_resize_to_target_size": False,
                "output_target_width": 512,
                "output_target_height": 512,
                "output_padding": "8",
                "device_mode": "cpu (compatible)",
            },
        }
        g["enc"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["crop", 1], "vae": vae}}
        g["noise_mask"] = {"class_type": "SetLatentNoiseMask", "inputs": {"samples": ["enc", 0], "mask": ["crop", 2]}}
        g["ks"] = ksampler(model, ["noise_mask", 0])
        g["dec"] = {"class_type": "VAEDecode", "inputs": {"samples": ["ks", 0], "vae": vae}}
        g["stitch"] = {
            "class_type": "InpaintStitchImproved",
            "inputs": {"stitcher": ["crop", 0], "inpainted_image": ["dec", 0]},
        }
        result = ["stitch", 0]
    elif pipeline == "Ultimate SD Upscale":
        g["usdu"] = {
            "class_type": "UltimateSDUpscaleNoUpscale",
            "inputs": {
                "upscaled_image": image,
                "model": model,
                "vae": vae,
                **cond,
                **sampling,
                "mode_type": "Linear",
                "tile_width": px(512, args.size),
                "tile_height": px(512, args.size),
                "mask_blur": 8,
                "tile_padding": px(32, args.size),
                "seam_fix_mode": "None",
                "seam_fix_denoise": 1.0,
                "seam_fix_width": 64,
                "seam_fix_mask_blur": 8,
                "seam_fix_padding": 16,
                "force_uniform_tiles": True,
                "tiled_decode": False,
                "batch_size": 1,
            },
        }
        result = ["usdu", 0]
    else:
        raise ValueError(pipeline)
    g["out"] = {"class_type": "SaveImage", "inputs": {"images": result, "filename_prefix": "bench"}}
    return g


def pixel_change(server, hist, original, keep) -> tuple[int, float]:
    """(largest change 0..255, share of `keep` pixels changed) of the saved PNG against the input."""
    import numpy as np
    from PIL import Image

    info = hist["outputs"]["out"]["images"][0]
    out = np.array(Image.open(server.base / "output" / info.get("subfolder", "") / info["filename"]).convert("RGB"))
    if out.shape != original.shape:
        raise RuntimeError(f"saved picture {out.shape} is not the input's {original.shape}")
    diff = np.abs(out.astype(int) - original.astype(int)).max(axis=-1)[keep]
    return int(diff.max()) if diff.size else 0, float((diff > 0).mean()) if diff.size else 0.0


def run(server, args, done) -> list[dict]:
    """The rows, in the order of --groups; `done(rows)` after each."""
    import numpy as np
    from PIL import Image
    from refine_helpers import picture as make_picture

    def write_picture(n: int, side: int) -> tuple[str, np.ndarray]:
        name = f"pic_{n}.png"  # a new file per prompt: nothing cached from an earlier prompt is reused
        pixels = (make_picture(side, side, seed=7)[0].numpy() * 255).round().astype(np.uint8)
        Image.fromarray(pixels).save(server.base / "input" / name)
        return name, pixels

    counter = iter(range(10**6))
    rows = []
    # warm-up: loads the models (a small picture, the same loaders)
    name, _ = write_picture(next(counter), min(args.size, 128))
    measure(server, graph("stock", None, name, 1, args), "warm-up")

    def one(group: str, pipeline: str, mask: str | None, side: int, keep) -> dict:
        times, added, largest, share = [], [], [], []
        for r in range(args.repeats):
            name, original = write_picture(next(counter), side)
            try:
                seconds, mb, hist = measure(server, graph(pipeline, mask, name, 100 + r, args), f"{group}: {pipeline}")
            except Exception as err:  # a peer that fails here is a result too: recorded, the rest still runs
                log.error("%s: %s failed: %s", group, pipeline, err)
                return {"group": group, "pipeline": pipeline, "error": str(err)[:2000]}
            times.append(seconds)
            added.append(mb)
            if keep is not None:
                big, frac = pixel_change(server, hist, original, keep)
                largest.append(big)
                share.append(frac)
        row = {
            "group": group,
            "pipeline": pipeline,
            "times_s": times,
            "time_s": statistics.median(times),
            "added_mb": max(added),
            "kept_max_change": max(largest) if largest else None,
            "kept_share_changed": max(share) if share else None,
        }
        print(
            f"{group} | {pipeline}: {row['time_s']:.1f} s, +{row['added_mb']:.0f} MB, kept pixels: "
            f"{row['kept_max_change']} of 255, {row['kept_share_changed']}",
            flush=True,
        )
        return row

    wanted = args.groups.split("|") if args.groups else [*MASKS, "upscale 2×"]
    for group in wanted:
        if group == "upscale 2×":
            args.upscale_group = True
            for pipeline in UPSCALE:
                if pipeline.startswith("Ultimate") and not args.usdu:
                    continue
                rows.append(one(group, pipeline, None, args.size // 2, None))
                done(rows)
            continue
        args.upscale_group = False
        m = mask_array(group, args.size)
        keep = kept_region(m, args.keep_margin) if m is not None else None
        mask = None if group == "no mask" else group
        for pipeline in PIPELINES:
            if pipeline == "Crop & Stitch" and not args.crop_and_stitch:
                continue
            rows.append(one(group, pipeline, mask, args.size, keep))
            done(rows)
    return rows


def target(row: dict, rows: list[dict], size: int) -> str:
    """The issue's time target of a row at picture side `size`, as text with ✓ / ✗ (empty where it has none)."""
    by = {(r["group"], r["pipeline"]): r for r in rows}
    ratio = row["ratio"]
    notes = []
    if row["pipeline"] in ("Solune Refine", "hook + Stitch") and row["group"] not in ("no mask",):
        cs = by.get((row["group"], "Crop & Stitch"))
        if cs is not None:
            # one region: ≤ Crop & Stitch's time (the issue: "at 512² within 15 %"); two far apart: ≤ 0.6 of it
            bound = 0.6 if row["group"] == "two corners" else (1.15 if size <= 512 else 1.0)
            notes.append(f"{'✓' if ratio <= bound * cs['ratio'] else '✗'} ≤ {bound:g} × C&S")
        full = by.get(("no mask", row["pipeline"]))
        if full is not None and row["group"] in A_EVAL:
            bound = A_EVAL[row["group"]] + 0.05
            rel = ratio / full["ratio"]
            notes.append(f"{rel:.2f} of no mask {'✓' if rel <= bound else '✗'} ≤ {bound:.2f}")
    if row["pipeline"] == "Solune Refine 2×":
        us = by.get(("upscale 2×", "Ultimate SD Upscale 2×"))
        if us is not None:
            ok_t, ok_m = ratio <= us["ratio"], row["added_mb"] < us["added_mb"]
            notes.append(f"time {'✓' if ok_t else '✗'} ≤ USDU, memory {'✓' if ok_m else '✗'} < USDU")
    return "; ".join(notes)


# (changed area grown by the margins) / (image area) at 1024², tiles 512/64: the active cells grown by the
# overlap (64 px) and the VAE's contexts — here the overlap, which dominates; the two corners: two
# 128² squares 64 px from the corners, grown by 64 px on each side and clipped (256² and 256² each)
A_EVAL = {
    "kept 0.75": (576 / 1024) ** 2,
    "kept 0.5": 576 / 1024,
    "kept 0.25": 1 - (448 / 1024) ** 2,
    "two corners": 2 * (256 / 1024) ** 2,
}


def areas(size: int) -> str:
    """Where the time goes, by geometry (no ComfyUI): the share of the picture each pass of Solune Refine
    reads — VAE encode, model (the hook's windows, margin included), VAE decode — computed by the node's own
    functions (`solune.image`, `make_plan`), beside the crop Crop & Stitch encodes, samples and decodes
    (the mask's bounding box grown by 1.2 about its centre, clipped, rounded up to 8 px)."""
    import torch

    from solune.image import DECODE_CONTEXT, ENCODE_CONTEXT, encode_needed, model_region, vae_pass
    from solune.samplers.tiled import TileSettings, make_plan

    geometry = {"tile_width": px(512, size), "tile_height": px(512, size), "overlap": px(64, size)}
    settings = TileSettings.from_inputs(**{**TILING, **geometry})
    lat = size // 8
    lines = [
        f"| {size}², mask | VAE encode reads | model reads | VAE decode reads | Crop & Stitch crop |",
        "|---|---|---|---|---|",
    ]
    for name in MASKS[1:]:
        m = torch.from_numpy(mask_array(name, size) / 255.0).float()
        plan = make_plan(lat, lat, settings, denoise_mask=m[None])
        model = model_region(plan, "blend", True)
        decode = vae_pass((plan.scale_map.reshape(-1, lat, lat) != 0).any(dim=0), context=DECODE_CONTEXT)
        encode = vae_pass(encode_needed(model, decode), context=ENCODE_CONTEXT)
        ys, xs = torch.nonzero(m > 0, as_tuple=True)
        crop = 1.0
        for lo, hi in ((int(ys.min()), int(ys.max()) + 1), (int(xs.min()), int(xs.max()) + 1)):
            grow = (hi - lo) * 0.2 / 2
            side = min(size, max(lo + grow + (hi - lo), hi + grow) - max(0.0, lo - grow))
            crop *= min(size, -(-side // 8) * 8) / size
        lines.append(
            f"| {name} | {encode.read_area() / lat**2:.2f} | {float(model.float().mean()):.2f} | "
            f"{decode.read_area() / lat**2:.2f} | {crop:.2f} |"
        )
    return "\n".join(lines)


def table(rows: list[dict], size: int) -> str:
    stock = {r["group"]: r for r in rows if r["pipeline"].startswith("stock")}
    lines = [
        "| picture, mask | pipeline | time vs stock | s | peak RSS added (MB) | kept pixels: largest change, "
        "share changed | issue's time targets |",
        "|---|---|---|---|---|---|---|",
    ]
    failed = [r for r in rows if "error" in r]
    rows = [r for r in rows if "error" not in r]
    for r in rows:
        r["ratio"] = r["time_s"] / stock[r["group"]]["time_s"]
    for r in failed:
        lines.append(f"| {r['group']} | {r['pipeline']} | failed: {r['error'][:200]} | | | | |")
    for r in rows:
        kept = (
            "—"
            if r["kept_max_change"] is None
            else f"{r['kept_max_change']} of 255, {100 * r['kept_share_changed']:.1f} %"
        )
        lines.append(
            f"| {r['group']} | {r['pipeline']} | {r['ratio']:.2f} | {r['time_s']:.1f} | {round(r['added_mb']):+d} | "
            f"{kept} | {target(r, rows, size)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comfyui", type=Path, help="path to a ComfyUI checkout (required unless --table)")
    parser.add_argument("--crop-and-stitch", type=Path, help="checkout of lquesada/ComfyUI-Inpaint-CropAndStitch")
    parser.add_argument("--usdu", type=Path, help="checkout of ssitu/ComfyUI_UltimateSDUpscale, with its submodule")
    parser.add_argument("--size", type=int, default=SIZE, help="picture side (the upscale's output side)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--denoise", type=float, default=0.5)
    parser.add_argument("--cfg", type=float, default=7.0)
    parser.add_argument(
        "--cs-context",
        type=float,
        default=1.2,
        help="Crop & Stitch's context factor (1.5: its crop gets the 64 px each side that Solune's decoder reads "
        "around a 256² change)",
    )
    parser.add_argument("--blend", type=int, default=16, help="Solune's blend and Crop & Stitch's mask_blend_pixels")
    parser.add_argument("--keep-margin", type=int, help="kept pixels: this far from the mask (default 2 × blend)")
    parser.add_argument("--groups", help="'|'-separated subset of: " + ", ".join([*MASKS, "upscale 2×"]))
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--table", type=Path, help="only print the table of a JSON file written by --out")
    parser.add_argument("--areas", action="store_true", help="only print the share of the picture each pass reads")
    args = parser.parse_args()
    if args.areas:
        print(areas(args.size))
        return
    if args.table is not None:
        data = json.loads(args.table.read_text())
        print(table(data["results"], int(data["args"]["size"])))
        return
    if args.comfyui is None:
        parser.error("--comfyui is required")
    unknown = set(args.groups.split("|")) - {*MASKS, "upscale 2×"} if args.groups else set()
    if unknown:
        parser.error(f"--groups: unknown {sorted(unknown)}; allowed: {', '.join([*MASKS, 'upscale 2×'])}")
    if args.keep_margin is None:
        args.keep_margin = 2 * args.blend
    if args.usdu is not None and not any((args.usdu / "repositories" / "ultimate_sd_upscale").glob("*")):
        parser.error(f"--usdu {args.usdu}: repositories/ultimate_sd_upscale is empty (check out its submodule)")
    os.environ["COMFYUI_PATH"] = str(args.comfyui.expanduser().resolve())
    sys.path.insert(0, str(REPO / "tests"))
    from comfy_harness import import_comfy

    comfy, why = import_comfy()
    if comfy is None:
        raise SystemExit(why)
    peers = {}
    if args.crop_and_stitch:
        peers["ComfyUI-Inpaint-CropAndStitch"] = args.crop_and_stitch
    if args.usdu:
        peers["ComfyUI_UltimateSDUpscale"] = args.usdu

    def save(rows: list[dict]) -> None:
        if args.out:
            data = {"args": {k: str(v) for k, v in vars(args).items()}, "results": rows}
            args.out.write_text(json.dumps(data, indent=1))

    started = time.time()
    with tempfile.TemporaryDirectory(prefix="solune_bench_") as tmp:
        server = start_server(Path(tmp), peers, prepare(args.size))
        try:
            rows = run(server, args, save)
        finally:
            server.stop()
    print(f"[{time.time() - started:.0f} s]")
    print(table(rows, args.size))
    save(rows)


if __name__ == "__main__":
    main()
