"""Benchmark (not a test): a tiled run with a ControlNet per tile at 2048×2048 px against the same
run whole-image and against the tiled run without ControlNet — peak memory and time, CPU.

Run: COMFYUI_PATH=/path/to/ComfyUI PYTHONPATH=<dir with solune> python bench/bench_controlnet_tiles.py

Uses ComfyUI's own SD1.5 UNet and LDM ControlNet classes at a narrow width (model_channels 32,
three levels, attention on the quarter-resolution one) with default-init random weights, so a 256² latent runs
on a CPU in seconds; ComfyUI's sampler (euler, cfg 1, denoise 0.5, 1 step by default) and ControlNetApply-
Advanced. Each configuration runs in a fresh subprocess; peak memory is that process's max RSS
(resource.getrusage) minus its RSS just before sampling, so it is what the run itself added.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

CONFIGS = {
    "tiled_controlnet": {"tiled_model": True, "controlnet": True},
    "whole_controlnet": {"tiled_model": False, "controlnet": True},
    "tiled_plain": {"tiled_model": True, "controlnet": False},
}
UNET = {
    "in_channels": 4,
    "model_channels": 32,
    "num_res_blocks": [1, 1, 1],
    "channel_mult": [1, 2, 2],
    "transformer_depth": [0, 0, 1],
    "transformer_depth_middle": 1,
    "context_dim": 768,
    "num_heads": 1,
    "num_head_channels": -1,
    "use_linear_in_transformer": False,
    "adm_in_channels": None,
    "use_spatial_transformer": True,
    "image_size": 32,
    "use_temporal_attention": False,
    "use_temporal_resblock": False,
    "legacy": False,
    "use_checkpoint": False,
}


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def default_init(module, seed):
    import torch

    torch.manual_seed(seed)
    for layer in module.modules():
        for cls in (torch.nn.Linear, torch.nn.Conv2d, torch.nn.GroupNorm, torch.nn.LayerNorm):
            if isinstance(layer, cls):
                cls.reset_parameters(layer)
                break
    return module


def one_run(name: str, size: int, steps: int) -> dict:
    """One configuration in this process; returns its figures."""
    sys.path.insert(0, os.environ["COMFYUI_PATH"])
    from comfy.cli_args import args

    args.cpu = True
    import comfy.cldm.cldm
    import comfy.controlnet
    import comfy.model_patcher
    import comfy.ops
    import comfy.sample
    import comfy.supported_models
    import torch

    import nodes
    from solune.nodes.tiled_img2img import SoluneTiledImg2Img

    cfg = CONFIGS[name]
    # output blocks take their depths from the end of the list: attention on the deepest level only
    config = comfy.supported_models.SD15(dict(UNET, out_channels=4, transformer_depth_output=[0, 0, 0, 0, 1, 1]))
    base = config.get_model({}, device="cpu")
    default_init(base.diffusion_model, 0)
    model = comfy.model_patcher.ModelPatcher(base, load_device=torch.device("cpu"), offload_device=torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    pos, neg = [[torch.randn(1, 77, 768, generator=g), {}]], [[torch.randn(1, 77, 768, generator=g), {}]]
    if cfg["controlnet"]:
        net = comfy.cldm.cldm.ControlNet(
            hint_channels=3, dtype=torch.float32, device="cpu", operations=comfy.ops.disable_weight_init, **UNET
        )
        cn = comfy.controlnet.ControlNet(default_init(net, 1), load_device=torch.device("cpu"))
        hint = torch.rand(1, size * 8, size * 8, 3, generator=g)
        pos, neg = nodes.ControlNetApplyAdvanced().apply_controlnet(pos, neg, cn, hint, 0.8, 0.0, 1.0)
    latent = torch.randn(1, 4, size, size, generator=g)
    kw = {"min_denoise": 0.5, "max_denoise": 0.5, "tiled_model": cfg["tiled_model"], "tile_batch_size": 1}
    patched = SoluneTiledImg2Img.execute(model=model, latent={"samples": latent}, **kw).result[0]
    noise = comfy.sample.prepare_noise(latent, 0)
    before = rss_mib()
    t = time.perf_counter()
    with torch.no_grad():
        comfy.sample.sample(
            patched, noise, steps, 1.0, "euler", "simple", pos, neg, latent, denoise=0.5, disable_pbar=True, seed=0
        )
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"name": name, "seconds": seconds, "peak_added_mib": peak - before}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256, help="latent size (256 = 2048 px)")
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--one", choices=list(CONFIGS), help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.one:
        sys.stdout.write(json.dumps(one_run(a.one, a.size, a.steps)) + "\n")
        return
    results = {}
    for name in CONFIGS:
        out = subprocess.run(
            [sys.executable, __file__, "--one", name, "--size", str(a.size), "--steps", str(a.steps)],
            capture_output=True,
            text=True,
            check=True,
        )
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
        sys.stdout.write(f"{name:18s} {results[name]['seconds']:8.2f} s  +{results[name]['peak_added_mib']:8.1f} MiB\n")
    t, w, p = results["tiled_controlnet"], results["whole_controlnet"], results["tiled_plain"]
    sys.stdout.write(
        f"tiled+CN / whole+CN: time {t['seconds'] / w['seconds']:.3f}, "
        f"peak {t['peak_added_mib'] / w['peak_added_mib']:.3f}\n"
    )
    sys.stdout.write(
        f"tiled+CN / tiled without CN: time {t['seconds'] / p['seconds']:.3f}, "
        f"peak {t['peak_added_mib'] / p['peak_added_mib']:.3f}\n"
    )


if __name__ == "__main__":
    main()
