"""DDPM-grid samplers: Sol's DDPM posterior / DDIM step and epsilon DDIM (pure torch).

The samplers speak k-diffusion: `denoised = model(x, σ)` with the state x = x0 + σ·ε
(ComfyUI's ε / v frame). They work on the model's discrete timestep grid (1000 steps for
SD1.5): every σ they receive is snapped to the nearest grid timestep, nearest in log σ (the
rule ComfyUI's `timestep()` uses), and each step moves between two grid timesteps with the
DDPM coefficients ᾱ of those timesteps. σ = 0 means "clean", ᾱ = 1.

Per step, in the DDPM (variance-preserving) view x_t = x/sqrt(1 + σ²), a = sqrt(ᾱ_t),
s = sqrt(1 − ᾱ_t):

1. x0 from the model. For Sol the network's v becomes x0 = (a·x_t − s·v)/(a² + s²) inside the
   model wrapper (`solune.velocity`); the sampler sees x0.
2. ε = (x_t − a·x0)/s.
3. DDPM posterior step (Ho et al. 2020, eq. 6–7), with α = ᾱ_t/ᾱ_prev, β = 1 − α:
       x_prev = sqrt(ᾱ_prev)·β/(1 − ᾱ_t)·x0 + sqrt(α)·(1 − ᾱ_prev)/(1 − ᾱ_t)·x_t + sqrt(β̃)·z,
       β̃ = β·(1 − ᾱ_prev)/(1 − ᾱ_t),
   or DDIM step (Song et al. 2021, eq. 12) with η:
       σ_η = η·sqrt((1 − ᾱ_prev)/(1 − ᾱ_t))·sqrt(1 − ᾱ_t/ᾱ_prev),
       x_prev = sqrt(ᾱ_prev)·x0 + sqrt(1 − ᾱ_prev − σ_η²)·ε + σ_η·z.
   DDIM with η = 1 has exactly the posterior's mean and variance.

Noise z: `noise_sampler(σ, σ_next)`, one draw per step that ends above σ = 0 — the draw order
of ComfyUI's `ddpm` sampler. The caller supplies it whenever η > 0: in ComfyUI that is ComfyUI's
own `default_noise_sampler(x, seed)` (see `solune.nodes.samplers`), so the step noise follows
whatever the installed version draws (0.33 seeds it apart from the initial noise on the CPU).
"""

from __future__ import annotations

import math

import torch

from ..checks import check_number
from ..velocity import ddpm_alphas_cumprod


def check_noise_sampler(eta: float, noise_sampler) -> None:
    """A stochastic step (η > 0) needs a noise source: a callable (σ, σ_next) → noise shaped like x."""
    if eta > 0.0 and not callable(noise_sampler):
        raise ValueError(
            f"noise_sampler must be a callable (sigma, sigma_next) -> noise shaped like x when eta > 0; got "
            f"{noise_sampler!r} with eta = {eta:g} (in ComfyUI pass comfy.k_diffusion.sampling."
            "default_noise_sampler(x, seed=extra_args['seed']), or use eta = 0 for the deterministic step)"
        )


def nearest_timesteps(sigmas: torch.Tensor, alphas_cumprod: torch.Tensor) -> list[int]:
    """Grid timestep of each σ (nearest in log σ); −1 for σ = 0 (the clean end, ᾱ = 1).

    Raises ValueError when the snapped timesteps increase (a schedule must go from noisy to clean).
    """
    table = ((1.0 - alphas_cumprod) / alphas_cumprod).sqrt().double().log()
    out = []
    for sigma in sigmas.detach().double().cpu().tolist():
        if not math.isfinite(sigma) or sigma < 0:
            raise ValueError(f"sigmas must be finite and >= 0; got {sigma!r}")
        out.append(-1 if sigma == 0.0 else int((table - math.log(sigma)).abs().argmin()))
    for i, (t, t_next) in enumerate(zip(out, out[1:])):
        if t_next > t:
            raise ValueError(
                f"sigmas must decrease: step {i} goes from grid timestep {t} to {t_next} "
                f"(σ {float(sigmas[i]):.6g} → {float(sigmas[i + 1]):.6g})"
            )
    return out


def _alpha_bar(alphas_cumprod: torch.Tensor, t: int) -> float:
    return 1.0 if t < 0 else float(alphas_cumprod[t])


def posterior_coefficients(ab_t: float, ab_prev: float) -> tuple[float, float, float]:
    """DDPM posterior q(x_prev | x_t, x0): (coefficient of x0, of x_t, standard deviation)."""
    alpha = ab_t / ab_prev
    beta = 1.0 - alpha
    c_x0 = math.sqrt(ab_prev) * beta / (1.0 - ab_t)
    c_xt = math.sqrt(alpha) * (1.0 - ab_prev) / (1.0 - ab_t)
    std = math.sqrt(max(beta * (1.0 - ab_prev) / (1.0 - ab_t), 0.0))
    return c_x0, c_xt, std


def ddim_coefficients(ab_t: float, ab_prev: float, eta: float) -> tuple[float, float, float]:
    """DDIM step: (coefficient of x0, of ε, noise standard deviation σ_η)."""
    sigma_eta = eta * math.sqrt(max((1.0 - ab_prev) / (1.0 - ab_t) * (1.0 - ab_t / ab_prev), 0.0))
    c_eps = math.sqrt(max(1.0 - ab_prev - sigma_eta**2, 0.0))
    return math.sqrt(ab_prev), c_eps, sigma_eta


def _sample_grid(model, x, sigmas, extra_args, callback, eta, alphas_cumprod, noise_sampler, posterior):
    extra_args = {} if extra_args is None else extra_args
    alphas_cumprod = ddpm_alphas_cumprod() if alphas_cumprod is None else alphas_cumprod.double().cpu()
    if len(sigmas) <= 1:
        return x
    steps = nearest_timesteps(sigmas, alphas_cumprod)
    s_in = x.new_ones([x.shape[0]])
    # 1. the incoming state, read in the variance-preserving view at the first σ it was noised to
    x_t = x / math.sqrt(1.0 + float(sigmas[0]) ** 2)
    for i, (t, t_prev) in enumerate(zip(steps[:-1], steps[1:])):
        ab_t, ab_prev = _alpha_bar(alphas_cumprod, t), _alpha_bar(alphas_cumprod, t_prev)
        if t < 0:
            break  # already clean
        sigma_hat = math.sqrt((1.0 - ab_t) / ab_t)
        # 2. the model on the grid: x0 at the state x = x_t·sqrt(1 + σ̂²)
        x_in = x_t * math.sqrt(1.0 + sigma_hat**2)
        denoised = model(x_in, sigma_hat * s_in, **extra_args)
        if callback is not None:
            callback({"x": x_in, "i": i, "sigma": sigmas[i], "sigma_hat": sigma_hat, "denoised": denoised})
        a, s = math.sqrt(ab_t), math.sqrt(1.0 - ab_t)
        # 3. the step
        if posterior:
            c_x0, c_xt, std = posterior_coefficients(ab_t, ab_prev)
            x_t = c_x0 * denoised + c_xt * x_t
        else:
            eps = (x_t - a * denoised) / s
            c_x0, c_eps, std = ddim_coefficients(ab_t, ab_prev, eta)
            x_t = c_x0 * denoised + c_eps * eps
        if t_prev >= 0 and std > 0.0:
            x_t = x_t + std * noise_sampler(sigmas[i], sigmas[i + 1])
    # 4. back to the sampler's state at the last σ it asked for
    return x_t * math.sqrt(1.0 + float(sigmas[-1]) ** 2)


@torch.no_grad()
def sample_sol_ddpm(
    model, x, sigmas, extra_args=None, callback=None, disable=None, eta=1.0, alphas_cumprod=None, noise_sampler=None
):
    """Sol's recipe on the discrete DDPM grid: η = 1 is the DDPM posterior step (ancestral, noise
    from `noise_sampler`), η < 1 the DDIM step with that η (η = 0: deterministic)."""
    eta = check_number("eta", eta, 0.0, 1.0)
    check_noise_sampler(eta, noise_sampler)
    return _sample_grid(
        model, x, sigmas, extra_args, callback, eta, alphas_cumprod, noise_sampler, posterior=eta == 1.0
    )


@torch.no_grad()
def sample_epsilon_ddim(
    model, x, sigmas, extra_args=None, callback=None, disable=None, eta=0.0, alphas_cumprod=None, noise_sampler=None
):
    """DDIM (Song et al. 2021) on the discrete DDPM grid for an ε model; η = 0 is deterministic,
    η > 0 draws its noise from `noise_sampler`."""
    eta = check_number("eta", eta, 0.0, 1.0)
    check_noise_sampler(eta, noise_sampler)
    return _sample_grid(model, x, sigmas, extra_args, callback, eta, alphas_cumprod, noise_sampler, posterior=False)
