"""Benchmark (not a test): Solune's tiled img2img beside the stock KSampler, DifferentialDiffusion and
(optionally) shiimizu/ComfyUI-TiledDiffusion, all in ONE real ComfyUI server on the CPU.

    python bench/bench_peers.py --comfyui ~/ComfyUI [--tiled-diffusion /path/to/ComfyUI-TiledDiffusion]
                                [--repeats 3] [--out bench_peers.json]

Run it with ComfyUI's Python (the script imports ComfyUI to write the tiny random-weight models of
tests/comfy_harness.py: SD1.5 UNet, CLIP-L, TAESD). Every configuration is a prompt of the same
graph — EmptyImage 1024² → VAEEncode → [model patch] → KSampler (euler, normal, 4 steps, denoise
0.5, cfg 7) → SaveLatent — queued `--repeats` times with different seeds, so only the sampler and
what it depends on re-run. Reported per configuration, as ratios to stock KSampler in the same
server:

* time: the server's own execution time (execution_start → execution_success timestamps), median,
  divided by the stock time measured nearest before and after it (stock is re-run every
  `--stock-every` rows, since load on a shared machine drifts);
* memory added: the server process's peak RSS during the prompt minus its RSS just before it, the
  largest over the repeats. The peak is reset before every prompt (`/proc/<pid>/clear_refs` = 5),
  so earlier runs do not hide it; the server runs with MALLOC_MMAP_THRESHOLD_ fixed at 1 MiB so
  large tensors go back to the system when freed.

`--size` scales the image and every tile size and overlap together (named at 1024² in the table).
Masks (1 = change): "kept 0.75" changes the top-left quarter, "kept 0.5" the left half, "kept 0.25"
everything but the bottom-right quarter, "all kept" nothing; Solune uses scale_mode mask with
min_denoise 0, max_denoise 1, blend mode.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIZE = 1024

TILING = {
    "min_denoise": 0.0,
    "max_denoise": 1.0,
    "layout": "grid",
    "scale_mode": "mask",
    "tile_width": 768,
    "tile_height": 768,
    "overlap": 64,
    "falloff": "cosine",
    "min_tile": 256,
    "max_tile": 1024,
    "threshold": 0.02,
    "criterion": "variance",
    "mode": "blend",
    "tiled_model": True,
    "tile_batch_size": 4,
}


def masks(size: int) -> dict:
    """MASK subgraphs (node id → node) per name, built from SolidMask + MaskComposite."""
    half = size // 2

    def solid(value, w, h):
        return {"class_type": "SolidMask", "inputs": {"value": value, "width": w, "height": h}}

    def composite(dst, src, x, y, op):
        return {
            "class_type": "MaskComposite",
            "inputs": {"destination": dst, "source": src, "x": x, "y": y, "operation": op},
        }

    return {
        "kept 0.75": {
            "m0": solid(0.0, size, size),
            "m1": solid(1.0, half, half),
            "mask": composite(["m0", 0], ["m1", 0], 0, 0, "add"),
        },
        "kept 0.5": {
            "m0": solid(0.0, size, size),
            "m1": solid(1.0, half, size),
            "mask": composite(["m0", 0], ["m1", 0], 0, 0, "add"),
        },
        "kept 0.25": {
            "m0": solid(1.0, size, size),
            "m1": solid(1.0, half, half),
            "mask": composite(["m0", 0], ["m1", 0], half, half, "subtract"),
        },
        "all kept": {"mask": solid(0.0, size, size)},
    }


def graph(config: dict, seed: int, size: int, steps: int, denoise: float, cfg: float) -> dict:
    from comfy_harness import tiny_sd15_prompt_nodes  # tests/ is on sys.path once main() runs

    g = {
        **tiny_sd15_prompt_nodes("a lake at dawn"),
        "6": {
            "class_type": "EmptyImage",
            "inputs": {"width": size, "height": size, "batch_size": 1, "color": 0x4080C0},
        },
        "7": {"class_type": "VAEEncode", "inputs": {"pixels": ["6", 0], "vae": ["5", 0]}},
    }
    model, latent = ["1", 0], ["7", 0]
    kind = config["kind"]
    if config.get("mask"):
        g.update(masks(size)[config["mask"]])
    if kind == "dd":
        g["9"] = {"class_type": "DifferentialDiffusion", "inputs": {"model": model}}
        g["10"] = {"class_type": "SetLatentNoiseMask", "inputs": {"samples": latent, "mask": ["mask", 0]}}
        model, latent = ["9", 0], ["10", 0]
    elif kind == "solune":
        inputs = {**TILING, **config["tiling"], "model": model, "latent": latent}
        if config.get("mask"):
            inputs["denoise_mask"] = ["mask", 0]
        g["9"] = {"class_type": "SoluneTiledImg2Img", "inputs": inputs}
        model = ["9", 0]
    elif kind == "td":
        g["9"] = {"class_type": "TiledDiffusion", "inputs": {"model": model, **config["td"]}}
        model = ["9", 0]
    g["20"] = {
        "class_type": "KSampler",
        "inputs": {
            "model": model,
            "seed": seed,
            "steps": steps,
            "cfg": cfg,
            "sampler_name": "euler",
            "scheduler": "normal",
            "positive": ["3", 0],
            "negative": ["4", 0],
            "latent_image": latent,
            "denoise": denoise,
        },
    }
    g["21"] = {"class_type": "SaveLatent", "inputs": {"samples": ["20", 0], "filename_prefix": "bench"}}
    return g


def px(value: int, size: int) -> int:
    """A pixel length at 1024² scaled to an image of `size` (multiples of 8)."""
    return max(8, round(value * size / SIZE / 8) * 8)


def configurations(with_td: bool, size: int = SIZE) -> list[dict]:
    """The table's rows. Tile sizes and overlaps are named at 1024² and scaled with `size`."""
    uniform = {"scale_mode": "uniform", "min_denoise": 1.0, "max_denoise": 1.0, "overlap": px(64, size)}
    out = [
        {"name": "stock KSampler", "kind": "stock"},
        {"name": "DifferentialDiffusion + mask, kept 0.75", "kind": "dd", "mask": "kept 0.75"},
        {"name": "Solune whole-image hook, scale 1", "kind": "solune", "tiling": {**uniform, "tiled_model": False}},
    ]
    for tile in (768, 512, 256):
        geometry = {"tile_width": px(tile, size), "tile_height": px(tile, size), "overlap": px(64, size)}
        out.append(
            {
                "name": f"Solune tiled {tile}/64, batch 4, all regenerated",
                "kind": "solune",
                "tiling": {**uniform, **geometry},
            }
        )
        for mask in ("kept 0.25", "kept 0.5", "kept 0.75", "all kept"):
            out.append(
                {
                    "name": f"Solune tiled {tile}/64, batch 4, mask {mask}",
                    "kind": "solune",
                    "mask": mask,
                    "tiling": geometry,
                }
            )
    out.append(
        {
            "name": "Solune tiled 512/64, batch 1, all regenerated",
            "kind": "solune",
            "tiling": {**uniform, "tile_width": px(512, size), "tile_height": px(512, size), "tile_batch_size": 1},
        }
    )
    if with_td:
        for method in ("MultiDiffusion", "Mixture of Diffusers"):
            for batch in (1, 4):
                out.append(
                    {
                        "name": f"TiledDiffusion {method} 512/64, batch {batch}",
                        "kind": "td",
                        "td": {
                            "method": method,
                            "tile_width": px(512, size),
                            "tile_height": px(512, size),
                            "tile_overlap": px(64, size),
                            "tile_batch_size": batch,
                        },
                    }
                )
    return out


def _status(pid: int) -> dict:
    with open(f"/proc/{pid}/status") as f:
        return {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in f) if k in ("VmRSS", "VmHWM")}


def measure(server, prompt: dict, name: str) -> tuple[float, float, dict]:
    """Run one prompt: (the server's execution time in s, peak RSS added in MB, the history entry).

    The peak is reset first (`/proc/<pid>/clear_refs` = 5), so earlier prompts do not hide it."""
    with open(f"/proc/{server.proc.pid}/clear_refs", "w") as f:
        f.write("5")  # reset the peak RSS to the current RSS
    before = _status(server.proc.pid)["VmRSS"]
    hist = server.run_prompt(prompt, timeout=3600)
    if hist["status"]["status_str"] != "success":
        raise RuntimeError(f"{name}: {json.dumps(hist['status'])[:2000]}")
    peak = _status(server.proc.pid)["VmHWM"]
    stamps = {m[0]: m[1].get("timestamp") for m in hist["status"]["messages"]}
    return (stamps["execution_success"] - stamps["execution_start"]) / 1000.0, (peak - before) / 1024.0, hist


def run_config(server, config: dict, seeds, args) -> dict:
    times, added = [], []
    for seed in seeds:
        prompt = graph(config, seed, args.size, args.steps, args.denoise, args.cfg)
        seconds, mb, _ = measure(server, prompt, config["name"])
        times.append(seconds)
        added.append(mb)
    return {"name": config["name"], "times_s": times, "time_s": statistics.median(times), "added_mb": max(added)}


# A_eval / A of each mask at 1024² with a 64 px margin (the changed area grown by the margin, clipped)
A_EVAL = {"kept 0.75": (576 / 1024) ** 2, "kept 0.5": 576 / 1024, "kept 0.25": 1 - (448 / 1024) ** 2, "all kept": 0.0}


def table(results: list[dict], stock_runs: list) -> str:
    """The markdown table: time and memory vs stock; mask rows also vs all-regenerated at the same tiles,
    beside the target (A_eval / A) + 0.05."""
    for i, r in enumerate(results):  # the stock time measured nearest before and after this row
        before = [t for j, t in stock_runs if j <= i][-1]
        after = next((t for j, t in stock_runs if j > i), before)
        r["stock_s"] = (before + after) / 2
    full = {
        r["name"].split(", mask")[0].replace(", all regenerated", ""): r
        for r in results
        if r["name"].endswith("all regenerated")
    }
    lines = [
        "| run | time vs stock KSampler | peak RSS added (MB) | time vs all regenerated (target) |",
        "|---|---|---|---|",
    ]
    for r in results:
        extra = ""
        if ", mask " in r["name"]:
            head, mask = r["name"].split(", mask ")
            ref = full.get(head)
            if ref is not None:
                rel = (r["time_s"] / r["stock_s"]) / (ref["time_s"] / ref["stock_s"])
                extra = f"{rel:.3f} (≤ {A_EVAL[mask] + 0.05:.3f})"
        lines.append(f"| {r['name']} | {r['time_s'] / r['stock_s']:.3f} | {round(r['added_mb']):+d} | {extra} |")
    stock = results[0]
    return (
        f"stock KSampler: {stock['time_s']:.2f} s, {round(stock['added_mb']):+d} MB; stock runs "
        f"{', '.join(f'{t:.1f}' for _, t in stock_runs)} s\n\n" + "\n".join(lines)
    )


def areas(size: int = SIZE) -> str:
    """Model work per step by the window rule (no ComfyUI): latent pixels the windows evaluate, over the
    plan's tiles (all regenerated) and over the image, per tile size and mask; exact counts."""
    import torch

    from solune.samplers.tiled import TileSettings, grow, make_plan, window_set

    lat, half = size // 8, size // 2
    shapes = {"kept 0.75": (slice(0, half), slice(0, half)), "kept 0.5": (slice(None), slice(0, half))}
    lines = [
        "| tiles | mask | active | E (active grown by the margin) | windows | evaluated / all regenerated |",
        "|---|---|---|---|---|---|",
    ]
    for tile in (768, 512, 256):
        for name in ("kept 0.25", "kept 0.5", "kept 0.75"):
            mask = torch.zeros(size, size)
            if name == "kept 0.25":
                mask[:] = 1.0
                mask[half:, half:] = 0.0
            else:
                mask[shapes[name]] = 1.0
            settings = TileSettings.from_inputs(
                **{**TILING, "tile_width": px(tile, size), "tile_height": px(tile, size), "overlap": px(64, size)}
            )
            plan = make_plan(lat, lat, settings, denoise_mask=mask)
            active = plan.scale_map > 0
            ws = window_set(plan.layout, plan.weights, active, plan.overlap, *plan.max_window, plan.overlap)
            full = sum(t.area for t in plan.layout.tiles)
            lines.append(
                f"| {tile}/64 ({len(plan.layout)} tiles) | {name} | {float(active.float().mean()):.3f} | "
                f"{float(grow(active, plan.overlap).float().mean()):.3f} | {len(ws)} | {ws.area / full:.3f} |"
            )
    return "\n".join(lines)


def start_server(base: Path, peers: dict, prepare=None):
    """A started `ComfyServer` (ComfyUI at $COMFYUI_PATH, --cpu) in `base` with the tiny models, each peer
    checkout of `peers` (folder name → path) linked into its custom_nodes, and `prepare(base)` run before
    the start (extra models, input files). Large tensors go back to the system when freed
    (MALLOC_MMAP_THRESHOLD_ = 1 MiB), so the peak RSS of each prompt is its own."""
    from comfy_harness import ComfyServer

    server = ComfyServer(Path(os.environ["COMFYUI_PATH"]), base)
    server.write_models()
    (base / "custom_nodes").mkdir(parents=True, exist_ok=True)
    for name, path in peers.items():
        (base / "custom_nodes" / name).symlink_to(Path(path).expanduser().resolve(), target_is_directory=True)
    if prepare is not None:
        prepare(base)
    os.environ["MALLOC_MMAP_THRESHOLD_"] = str(1 << 20)
    return server.start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comfyui", type=Path, help="path to a ComfyUI checkout (required unless --table)")
    parser.add_argument("--tiled-diffusion", type=Path, help="path to a checkout of shiimizu/ComfyUI-TiledDiffusion")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=SIZE)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--denoise", type=float, default=0.5)
    parser.add_argument("--cfg", type=float, default=7.0)
    parser.add_argument(
        "--stock-every",
        type=int,
        default=4,
        help="re-run stock before every N-th row; each ratio uses the stock runs nearest in time",
    )
    parser.add_argument(
        "--only",
        help="run only configurations whose name contains one of these '|'-separated strings (stock always runs)",
    )
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--areas", action="store_true", help="only print the window rule's evaluated areas")
    parser.add_argument("--table", type=Path, help="only print the table of a JSON file written by --out")
    args = parser.parse_args()
    if args.areas:
        print(areas(args.size))
        return
    if args.table is None and args.comfyui is None:
        parser.error("--comfyui is required")
    if args.table is not None:
        data = json.loads(args.table.read_text())
        print(table(data["results"], data["stock_runs"]))
        return
    os.environ["COMFYUI_PATH"] = str(args.comfyui.expanduser().resolve())
    sys.path.insert(0, str(REPO / "tests"))
    from comfy_harness import import_comfy

    comfy, why = import_comfy()
    if comfy is None:
        raise SystemExit(why)
    configs = configurations(args.tiled_diffusion is not None, args.size)
    if args.only:
        wanted = args.only.split("|")
        configs = [c for c in configs if c["kind"] == "stock" or any(w in c["name"] for w in wanted)]
    with tempfile.TemporaryDirectory(prefix="solune_bench_") as tmp:
        peers = {"ComfyUI-TiledDiffusion": args.tiled_diffusion} if args.tiled_diffusion is not None else {}
        server = start_server(Path(tmp), peers)
        try:
            # warm-up (loads the models): at most 256², which loads the same models in a fraction of the time
            warm = min(args.size, 256)
            server.run_prompt(graph(configs[0], 10_000, warm, args.steps, args.denoise, args.cfg), timeout=3600)
            results, stock_runs = [], []
            for n, config in enumerate(configs):
                if config["kind"] != "stock" and n % args.stock_every == 0:
                    stock_runs.append((len(results), run_config(server, configs[0], range(100, 101), args)["time_s"]))
                t = time.time()
                results.append(run_config(server, config, range(args.repeats), args))
                if config["kind"] == "stock":
                    stock_runs.append((len(results) - 1, results[-1]["time_s"]))
                r = results[-1]
                print(
                    f"{r['name']}: {r['time_s']:.2f} s (runs {', '.join(f'{v:.2f}' for v in r['times_s'])}), "
                    f"+{r['added_mb']:.0f} MB  [{time.time() - t:.0f} s]",
                    flush=True,
                )
            stock_runs.append((len(results), run_config(server, configs[0], range(101, 102), args)["time_s"]))
        finally:
            server.stop()
    print(table(results, stock_runs))
    if args.out:
        args.out.write_text(
            json.dumps(
                {"args": {k: str(v) for k, v in vars(args).items()}, "results": results, "stock_runs": stock_runs},
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
