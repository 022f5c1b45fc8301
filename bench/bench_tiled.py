"""Benchmark of Solune's tiled img2img maths on CPU (not a test): hook overhead, skipping, area,
tile batching and peak memory. Run: PYTHONPATH=<dir with solune> python bench/bench_tiled.py

Uses a small conv + attention denoiser (attention over a 4x-downsampled grid, so tiles align to 4
latent units like a patch size) and a plain Euler
loop; every ratio is measured within one run of this script. Peak memory is the max RSS of a
fresh subprocess per configuration (resource.getrusage), so the figures include the interpreter.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import torch

from solune.samplers.tiled import PreserveState, TileSettings, evaluate_tiled, make_plan


class Denoiser(torch.nn.Module):
    """conv → single-head attention (scores materialised) on a 4x-downsampled grid → conv; an ε model."""

    def __init__(self, c=4, width=48):
        super().__init__()
        torch.manual_seed(0)
        self.inp = torch.nn.Conv2d(c, width, 3, padding=1)
        self.qkv = torch.nn.Linear(width, 3 * width)
        self.out = torch.nn.Conv2d(width, c, 3, padding=1)

    def forward(self, x, sigma):
        h = torch.nn.functional.silu(self.inp(x / (1 + sigma.view(-1, 1, 1, 1) ** 2) ** 0.5))
        s = torch.nn.functional.avg_pool2d(h, 4)
        q, k, v = self.qkv(s.flatten(2).transpose(1, 2)).chunk(3, dim=-1)
        w = torch.softmax(q @ k.transpose(1, 2) / q.shape[-1] ** 0.5, dim=-1)
        a = (w @ v).transpose(1, 2).reshape(s.shape)
        h = h + torch.nn.functional.interpolate(a, scale_factor=4, mode="nearest")
        return x - sigma.view(-1, 1, 1, 1) * self.out(h)


def euler(model, x, sigmas):
    for i in range(len(sigmas) - 1):
        s = sigmas[i] * torch.ones(x.shape[0])
        x = x + (x - model(x, s)) / sigmas[i] * (sigmas[i + 1] - sigmas[i])
    return x


def best_of(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


@torch.no_grad()
def overhead(net, size, steps):
    x0 = torch.randn(1, 4, size, size)
    sigmas = torch.linspace(2.0, 0.0, steps + 1)
    plan = make_plan(
        size,
        size,
        TileSettings(min_denoise=0.2, max_denoise=0.8, scale_mode="mask"),
        denoise_mask=torch.rand(size, size),
    )
    state = PreserveState(x0, plan.scale_map, "blend")
    noise = torch.randn_like(x0)
    stock_run = lambda: euler(net, x0 + sigmas[0] * noise, sigmas)  # noqa: E731
    hooked_run = lambda: state.write_back(euler(lambda x, s: state.blend(net(x, s), s), x0 + sigmas[0] * noise, sigmas))  # noqa: E731
    stock, hooked = [], []
    for _ in range(5):  # interleaved, best of 5 each, so load on the machine hits both alike
        stock.append(best_of(stock_run, 1))
        hooked.append(best_of(hooked_run, 1))
    stock, hooked = min(stock), min(hooked)
    return stock, hooked


@torch.no_grad()
def tiled_time(net, size, fraction_zero, batch, repeat=5):
    x = torch.randn(1, 4, size, size)
    settings = TileSettings(min_denoise=1.0, max_denoise=1.0, tile_width=256, tile_height=256)
    plan = make_plan(size, size, settings, align=4)
    n = len(plan.layout)
    k = round(fraction_zero * n)
    scales = torch.ones(size, size)
    active = [i >= k for i in range(n)]  # the first k tiles at 0 over their whole footprint

    def call():
        return evaluate_tiled(
            lambda xt, idx: net(xt, torch.ones(xt.shape[0])), x, plan.layout, plan.weights, active, x, batch
        )

    return best_of(call, repeat), n, k, plan, scales


def area_ratio(size):
    plan = make_plan(size, size, TileSettings(min_denoise=1.0, max_denoise=1.0), align=4)
    return sum(t.area for t in plan.layout.tiles) / (size * size), len(plan.layout)


def peak_child(kind, size):
    code = (
        "import resource, torch, sys\n"
        "sys.argv=['x']\n"
        "from bench.bench_tiled import Denoiser\n"
        "from solune.samplers.tiled import TileSettings, evaluate_tiled, make_plan\n"
        "torch.set_grad_enabled(False)\n"
        f"net = Denoiser(); x = torch.randn(1, 4, {size}, {size})\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        f"if '{kind}' == 'whole':\n"
        "    net(x, torch.ones(1))\n"
        "else:\n"
        f"    plan = make_plan({size}, {size}, TileSettings(min_denoise=1.0, max_denoise=1.0), align=4)\n"
        "    evaluate_tiled(lambda xt, i: net(xt, torch.ones(xt.shape[0])), x, plan.layout, plan.weights,\n"
        "                   [True] * len(plan.layout), x, 4)\n"
        "print(base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=".")
    base, peak = map(int, out.stdout.split())
    return base / 1024, peak / 1024  # MiB


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=128, help="latent side for the timing runs")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--memory-size", type=int, default=256, help="latent side for the memory run (256 = 2048 px)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    net = Denoiser().eval()
    stock, hooked = overhead(net, args.size, args.steps)
    print(
        f"whole-image hook overhead ({args.size}x{args.size} latent, {args.steps} Euler steps, blend): "
        f"stock {stock:.3f} s, hooked {hooked:.3f} s, ratio {hooked / stock:.4f}"
    )
    full, n, _, _, _ = tiled_time(net, args.size, 0.0, 1)
    for p in (0.25, 0.5, 0.75, 1.0):
        t, n, k, _, _ = tiled_time(net, args.size, p, 1)
        pk = k / n
        print(
            f"skip (256 px tiles, batch 1) p={pk:.2f} ({k}/{n} tiles at 0): {t:.3f} s vs full {full:.3f} s; "
            f"time/full {t / full:.3f}, bound (1-p)+0.05 = {(1 - pk) + 0.05:.3f}"
        )
    ratio, tiles = area_ratio(args.memory_size)
    print(
        f"evaluated area / latent area at the default 768 px tiles, 64 px overlap "
        f"({args.memory_size}x{args.memory_size} latent, {tiles} tiles): {ratio:.3f}"
    )
    t1, *_ = tiled_time(net, args.size, 0.0, 1)
    t4, *_ = tiled_time(net, args.size, 0.0, 4)
    print(f"tile batching (256 px tiles): batch 1 {t1:.3f} s, batch 4 {t4:.3f} s, speed-up {t1 / t4:.2f}x")
    base_w, peak_w = peak_child("whole", args.memory_size)
    base_t, peak_t = peak_child("tiled", args.memory_size)
    print(
        f"peak RSS one evaluation on a {args.memory_size}x{args.memory_size} latent: whole {peak_w:.0f} MiB "
        f"(+{peak_w - base_w:.0f} over start), tiled {peak_t:.0f} MiB (+{peak_t - base_t:.0f}); "
        f"increase ratio tiled/whole {(peak_t - base_t) / max(peak_w - base_w, 1):.3f}"
    )


if __name__ == "__main__":
    main()
