"""Tier 2, in process: Solune's SAMPLER / SIGMAS nodes in a real ComfyUI agree with ComfyUI's own
samplers where the schedules coincide, and refuse a model with the wrong prediction type."""

from __future__ import annotations

import pytest
import torch
from comfy_harness import tiny_sd15_model
from comfy_sampling_helpers import conds

pytestmark = pytest.mark.comfyui


@pytest.fixture(scope="module")
def models(comfy):
    from solune.nodes.prediction_type import SolunePredictionType

    base = tiny_sd15_model(seed=0)
    patch = lambda p: SolunePredictionType.execute(model=base, prediction=p, shift=2.0, zero_terminal_snr=False).result[
        0
    ]
    return {p: patch(p) for p in ("epsilon", "sol_v", "lune_flow")}


def sample(model, sampler, sigmas, latent=None, seed=11, cfg=4.0):
    import comfy.sample

    latent = torch.zeros(1, 4, 8, 8) if latent is None else latent
    noise = comfy.sample.prepare_noise(latent, seed)
    pos, neg = conds()
    return comfy.sample.sample_custom(
        model, noise, cfg, sampler, sigmas.clone(), pos, neg, latent, disable_pbar=True, seed=seed
    )


def stock(name):
    import comfy.samplers

    return comfy.samplers.sampler_object(name)


def grid_sigmas(model, steps=4, scheduler="simple"):
    import comfy.samplers

    return comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), scheduler, steps).cpu()


def node(name, **kwargs):
    from solune.nodes import samplers

    return getattr(samplers, name).execute(**kwargs).result[0]


def assert_close_and_moved(ours, ref, latent_like):
    assert torch.isfinite(ours).all()
    # float32 runs: 1e-5 relative to the latent's magnitude (the random UNet's latents reach ~1e2)
    diff = (ours - ref).abs().max().item()
    assert diff <= 1e-5 * max(1.0, ref.abs().max().item()), f"max |ours - stock| = {diff}"
    assert (ours - latent_like).abs().max().item() > 1e-2


@pytest.mark.parametrize("denoise", [1.0, 0.5])
def test_lune_euler_equals_stock_euler_on_lune_flow(models, denoise):
    sigmas = node("SoluneLuneScheduler", steps=4, shift=2.0, denoise=denoise)
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2)) * (denoise < 1)
    ours = sample(models["lune_flow"], node("SoluneSamplerLuneEuler", quantize_timesteps=False), sigmas, latent)
    ref = sample(models["lune_flow"], stock("euler"), sigmas, latent)
    assert_close_and_moved(ours, ref, latent)


def test_lune_scheduler_equals_comfyuis_simple_schedule_for_a_shifted_flow_model(models):
    ours = node("SoluneLuneScheduler", steps=4, shift=2.0, denoise=1.0)
    torch.testing.assert_close(ours, grid_sigmas(models["lune_flow"], 4, "simple"), rtol=0, atol=1e-6)


def test_quantized_lune_euler_differs_from_stock_only_slightly(models):
    sigmas = node("SoluneLuneScheduler", steps=4, shift=2.0, denoise=1.0)
    ours = sample(models["lune_flow"], node("SoluneSamplerLuneEuler", quantize_timesteps=True), sigmas)
    ref = sample(models["lune_flow"], stock("euler"), sigmas)
    diff = (ours - ref).abs().max().item()
    assert 0 < diff < 0.05 * ref.abs().max().item()


def test_sol_ddpm_equals_stock_ddpm_on_grid_sigmas(models):
    sigmas = grid_sigmas(models["sol_v"])
    ours = sample(models["sol_v"], node("SoluneSamplerSolDDPM", eta=1.0), sigmas)
    ref = sample(models["sol_v"], stock("ddpm"), sigmas)
    assert_close_and_moved(ours, ref, torch.zeros_like(ref))


@pytest.mark.parametrize(
    "prediction,node_id", [("sol_v", "SoluneSamplerSolDDPM"), ("epsilon", "SoluneSamplerEpsilonDDIM")]
)
@pytest.mark.parametrize("stock_name", ["euler", "ddim"])
def test_deterministic_ddim_equals_stock_euler_and_ddim_on_grid_sigmas(models, prediction, node_id, stock_name):
    sigmas = grid_sigmas(models[prediction], 4, "ddim_uniform" if stock_name == "ddim" else "simple")
    ours = sample(models[prediction], node(node_id, eta=0.0), sigmas)
    ref = sample(models[prediction], stock(stock_name), sigmas)
    assert_close_and_moved(ours, ref, torch.zeros_like(ref))


def test_epsilon_ddim_at_eta_one_equals_stock_ddpm(models):
    sigmas = grid_sigmas(models["epsilon"])
    ours = sample(models["epsilon"], node("SoluneSamplerEpsilonDDIM", eta=1.0), sigmas)
    ref = sample(models["epsilon"], stock("ddpm"), sigmas)
    assert_close_and_moved(ours, ref, torch.zeros_like(ref))


def step_noise_residual(model, sampler, seed=11):
    """One stochastic step from σ_max to the next grid σ (> 0) with x0 forced to 0: the result is
    λ·(initial noise) + μ·(step noise), so it is a multiple of the initial noise exactly when the
    step noise repeats it. Returns the part of the result that is not, relative to the result."""
    import comfy.sample

    zero_x0 = model.clone()
    zero_x0.set_model_sampler_post_cfg_function(lambda args: torch.zeros_like(args["denoised"]))
    out = sample(zero_x0, sampler, grid_sigmas(model, 4)[:2], seed=seed)
    noise = comfy.sample.prepare_noise(torch.zeros(1, 4, 8, 8), seed)
    lam = (out * noise).sum() / (noise * noise).sum()
    return ((out - lam * noise).abs().max() / out.abs().max()).item()


def comfyui_step_noise_repeats_the_initial_noise(seed=11) -> bool:
    """Probe the installed ComfyUI: is the first draw of its `default_noise_sampler` (what `ddpm`
    adds per step) the initial noise `prepare_noise` drew from the same seed? 0.3.64: yes (both
    seed a CPU generator with the seed); 0.33.0: no (it adds 1 to the seed on the CPU)."""
    import comfy.k_diffusion.sampling
    import comfy.sample

    initial = comfy.sample.prepare_noise(torch.zeros(1, 4, 8, 8), seed)
    step = comfy.k_diffusion.sampling.default_noise_sampler(torch.zeros(1, 4, 8, 8), seed=seed)(1.0, 0.5)
    return torch.equal(step, initial)


@pytest.mark.parametrize(
    "prediction,node_id", [("sol_v", "SoluneSamplerSolDDPM"), ("epsilon", "SoluneSamplerEpsilonDDIM")]
)
def test_step_noise_is_drawn_as_the_installed_comfyui_draws_it(models, prediction, node_id):
    """Where ComfyUI keeps the step noise apart from the initial noise, so does Solune's η = 1
    sampler; where ComfyUI's own `ddpm` repeats it (0.3.64), ours does the same (it equals `ddpm`)."""
    ours = step_noise_residual(models[prediction], node(node_id, eta=1.0))
    ref = step_noise_residual(models[prediction], stock("ddpm"))
    if comfyui_step_noise_repeats_the_initial_noise():
        assert ours < 1e-5 and ref < 1e-5, (ours, ref)
    else:
        assert ours > 0.1 and ref > 0.1, f"the step noise repeats the initial noise: residual {ours} (stock {ref})"


def test_sol_ddpm_snaps_off_grid_sigmas_to_the_timestep_grid(models):
    """ComfyUI's "normal" scheduler interpolates between grid σ; Sol DDPM runs those steps on the
    nearest grid timesteps, so its result equals a run on the snapped interior σ."""
    ms = models["sol_v"].get_model_object("model_sampling")
    sigmas = grid_sigmas(models["sol_v"], 6, "normal")
    snapped = sigmas.clone()
    snapped[1:-1] = ms.sigmas[ms.timestep(sigmas[1:-1])]
    assert (snapped - sigmas).abs().max() > 1e-4
    a = sample(models["sol_v"], node("SoluneSamplerSolDDPM", eta=1.0), sigmas)
    b = sample(models["sol_v"], node("SoluneSamplerSolDDPM", eta=1.0), snapped)
    assert (a - b).abs().max().item() <= 1e-5 * max(1.0, b.abs().max().item())


def test_sampler_reports_progress_once_per_step(models):
    import comfy.sample

    steps = []
    latent = torch.zeros(1, 4, 8, 8)
    pos, neg = conds()
    comfy.sample.sample_custom(
        models["sol_v"],
        comfy.sample.prepare_noise(latent, 1),
        4.0,
        node("SoluneSamplerSolDDPM", eta=1.0),
        grid_sigmas(models["sol_v"], 4),
        pos,
        neg,
        latent,
        callback=lambda i, *a: steps.append(i),
        disable_pbar=True,
        seed=1,
    )
    assert steps == [0, 1, 2, 3]


@pytest.mark.parametrize(
    "node_id,kwargs,model_key,needle",
    [
        (
            "SoluneSamplerSolDDPM",
            dict(eta=1.0),
            "lune_flow",
            "needs a model patched as sol_v, but the model being sampled is lune_flow",
        ),
        (
            "SoluneSamplerLuneEuler",
            dict(quantize_timesteps=False),
            "sol_v",
            "needs a model patched as lune_flow, but the model being sampled is sol_v",
        ),
        ("SoluneSamplerEpsilonDDIM", dict(eta=0.0), "sol_v", "use SoluneSamplerSolDDPM for a sol_v model"),
        ("SoluneSamplerSolDDPM", dict(eta=1.0), "unpatched", "ComfyUI's own EPS"),
    ],
)
def test_sampler_refuses_a_model_with_the_wrong_prediction_type(models, node_id, kwargs, model_key, needle):
    model = tiny_sd15_model(seed=0) if model_key == "unpatched" else models[model_key]
    with pytest.raises(ValueError) as err:
        sample(model, node(node_id, **kwargs), grid_sigmas(model, 3))
    assert needle in str(err.value)
    assert "SolunePredictionType" in str(err.value) and node_id in str(err.value)


@pytest.mark.parametrize(
    "node_id,kwargs,needle",
    [
        ("SoluneSamplerSolDDPM", dict(eta=1.5), "eta must be a number in [0, 1]; got 1.5"),
        ("SoluneSamplerEpsilonDDIM", dict(eta=-0.1), "got -0.1"),
        ("SoluneSamplerLuneEuler", dict(quantize_timesteps="yes"), "quantize_timesteps must be true or false"),
        ("SoluneLuneScheduler", dict(steps=4, shift=2.0, denoise=0.0), "denoise must be a number in (0, 1]; got 0.0"),
        ("SoluneLuneScheduler", dict(steps=4, shift=-1.0, denoise=1.0), "shift must be a number > 0"),
    ],
)
def test_sampler_nodes_refuse_bad_input(comfy, node_id, kwargs, needle):
    """Refused by validation (the node's validate_inputs, or ComfyUI's range check of an input it does not
    declare) and again when the node runs, with the input named."""
    from comfy_harness import validation_message

    from solune.nodes import samplers

    cls = getattr(samplers, node_id)
    msg = validation_message(cls, kwargs)
    assert isinstance(msg, str)
    assert needle in msg or "shift" in msg and "smaller than min" in msg
    with pytest.raises(ValueError) as err:
        cls.execute(**kwargs)
    assert needle in str(err.value) and node_id in str(err.value)
