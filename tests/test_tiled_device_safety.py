"""Tier 1: a whole sampling loop through the tiled hook's maths (`TiledRun`: hold, windowed
evaluation with cond/uncond chunks and cropped conditioning, blend, write-back) on tensors that
stand in for an accelerator's produces no float64 device tensor, no CPU/device mixing and no host
read of the model's tensors; the only host read is strength mode's one σ per evaluation (and the
schedule, once per run). The guard itself catches each kind of fault."""

import pytest
import torch
from device_guard import DeviceGuard, host, on_device

from solune.samplers.tiled import PreserveState, TiledRun, TileSettings, active_tiles, make_plan, tile_args


def plan_of(h, w, denoise_mask=None, align=1, **settings):
    return make_plan(h, w, TileSettings.from_inputs(**settings), denoise_mask=denoise_mask, align=align)


def pointwise(x):
    return torch.tanh(x) * 0.7 + x.square() * 0.1 - x[:, :1] * 0.2


def run_loop(mode, tiled, plan, x0, noise, context, sigmas, chunks=2):
    """k-diffusion Euler with cond/uncond batched like ComfyUI, on device tensors."""
    state = PreserveState(x0, plan.scale_map, mode, sigmas, noise, lambda s, n, o: o + s.view(-1, 1, 1, 1) * n)
    run = TiledRun(state, plan)
    b = x0.shape[0]
    evaluations = 0

    def model(x_in, sigma, ctx):  # x0 from a pointwise net plus a per-row context term
        return pointwise(x_in) + ctx.mean(dim=(1, 2)).view(-1, 1, 1, 1) * 0.1 + sigma.view(-1, 1, 1, 1) * 0.01

    x = x0 + sigmas[0] * noise
    s_in = x.new_ones([b])
    for i in range(len(sigmas) - 1):
        sigma = sigmas[i] * s_in
        evaluations += 1
        run.enter(sigma)
        xi = run.hold_input(x, sigma)
        x_cat, s_cat = torch.cat([xi] * chunks), torch.cat([sigma] * chunks)
        if tiled:

            def denoise(crops, windows, idx, s_cat=s_cat, rows=x_cat.shape[0]):
                s_t, c_t = tile_args((s_cat, context), windows, idx, rows, chunks)
                return model(crops, s_t, c_t)

            out = run.evaluate(denoise, x_cat, 3, chunks)
        else:
            out = model(x_cat, s_cat, context)
        cond, uncond = out.chunk(chunks)
        x0_cfg = uncond + (cond - uncond) * 3.0
        x0_b = run.blend(x0_cfg, sigma)
        run.leave()
        x = x + (x - x0_b) / sigmas[i] * (sigmas[i + 1] - sigmas[i])
    return state.write_back(x), evaluations


def setup(seed=0, scale_mode="mask"):
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(320, 448)
    mask[:160, :200] = 1.0
    if scale_mode == "pixel":  # one soft map per sample: [B, H, W]
        ramp = torch.linspace(0.0, 1.0, 120).expand(160, 120)
        mask = torch.stack([mask, mask.flip(-1)])
        mask[0, 160:, 200:320] = ramp
    plan = plan_of(
        40,
        56,
        min_denoise=0.0,
        max_denoise=1.0,
        scale_mode=scale_mode,
        denoise_mask=mask,
        tile_width=256,
        tile_height=256,
        overlap=32,
    )
    x0, noise = torch.randn(2, 4, 40, 56, generator=g), torch.randn(2, 4, 40, 56, generator=g)
    context = torch.randn(4, 3, 8, generator=g)  # [cond rows, uncond rows] × tokens × dim
    sigmas = torch.tensor([3.0, 2.0, 1.2, 0.6, 0.0])
    return plan, x0, noise, context, sigmas


@pytest.mark.parametrize("scale_mode", ["mask", "pixel"])
@pytest.mark.parametrize("tiled", [True, False])
@pytest.mark.parametrize("mode", ["blend", "strength"])
def test_a_sampling_run_is_float32_sync_free_and_stays_on_the_device(mode, tiled, scale_mode):
    plan, x0, noise, context, sigmas = setup(scale_mode=scale_mode)
    if scale_mode == "pixel":
        assert plan.per_pixel and plan.scale_map.shape == (2, 40, 56)
    with DeviceGuard() as guard:
        out, evaluations = run_loop(
            mode, tiled, plan, on_device(x0), on_device(noise), on_device(context), on_device(sigmas)
        )
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.device.type == "cuda"
    problems = [
        str(r)
        for r in guard.records
        if (r.kind, r.where.split(":")[-1]) not in {("sync", "read_sigma"), ("sync", "start_sigmas")}
    ]
    assert problems == []
    allowed = [r.where.split(":")[-1] for r in guard.records]
    if mode == "blend":
        assert allowed == []
    else:  # one σ per evaluation, the schedule once per run
        assert allowed.count("read_sigma") == evaluations and allowed.count("start_sigmas") == 1
    # the same numbers as the plain CPU run: the stand-in device changes nothing but the bookkeeping
    plain, _ = run_loop(mode, tiled, plan, x0, noise, context, sigmas)
    assert torch.equal(host(out), plain)


def test_the_guard_catches_float64_syncs_mixing_and_the_old_per_tile_activity_check():
    plan, x0, *_ = setup()
    x = on_device(x0)
    faults = {
        "float64": [
            lambda: x.double(),
            lambda: torch.zeros(3, dtype=torch.float64, device=x.device),
            lambda: x.to(torch.float64) * 2,
        ],
        "sync": [
            lambda: bool(x.any()),
            lambda: x.sum().item(),
            lambda: float(x.max()),
            lambda: x.cpu(),
            lambda: x.tolist(),
            lambda: x[x > 0],
            lambda: torch.equal(x, x),
            lambda: x.to("cpu"),
        ],
        "mixed": [lambda: x * torch.ones(40, 56), lambda: torch.where(torch.ones(40, 56, dtype=torch.bool), x, 0.0)],
    }
    for kind, calls in faults.items():
        for call in calls:
            with DeviceGuard() as guard:
                call()
            assert [r.kind for r in guard.records][:1] == [kind], (kind, [str(r) for r in guard.records])
    # what the hook did per evaluation before: one host read per tile to find the active tiles
    weight = on_device(plan.scale_map)[None, None]
    with DeviceGuard() as guard:
        active_tiles(plan.layout, weight)
    assert sum(r.kind == "sync" for r in guard.records) >= len(plan.layout)
    # and clean device work records nothing
    with DeviceGuard() as guard:
        y = torch.lerp(x, x * 2, on_device(plan.scale_map)) + torch.zeros(1, device=x.device)
        y.to(x.device, torch.float32)
    assert guard.records == []
