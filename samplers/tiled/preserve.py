"""Per-pixel preservation of a clean original during sampling, written against `denoised` only.

A run has a per-pixel denoise scale m in [0, 1] and the clean original x0_orig (model space).
Every model evaluation turns the model's clean estimate x0_model into

* **blend** mode ("velocity blend"): x0 = m·x0_model + (1 − m)·x0_orig. Because every sampler
  uses d = (x − x0)/σ, this is v = m·v_model + (1 − m)·v_preserve with v_preserve = (x − x0_orig)/σ.
* **strength** mode: a pixel with scale m is a stock img2img run at denoise m inside the run's own
  schedule. It joins the schedule at step k(m) = N − round(m·N) of the N steps, i.e. at
  σ_start(m) = sigmas[k(m)]. While σ > σ_start the model input there is the original re-noised to
  σ with the run's noise (what ComfyUI's noise_mask does) and x0 = x0_orig; from σ_start on, the
  pixel follows the model freely (x0 = x0_model).

Both modes reduce to one per-pixel weight w(σ) ∈ [0, 1] (blend: m; strength: 1 once started, else
0) and x0 = lerp(x0_orig, x0_model, w), exact at w = 0 and w = 1. After the schedule, `write_back`
puts the original back exactly where m = 0, which makes scale 0 exact for every sampler (some end
at σ > 0, ddpm loses float32 bits in its last step).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...checks import check_choice
from .settings import MODES

# Relative slack when comparing an evaluation's σ with a schedule σ: solvers that go through
# t = −log σ (dpm_fast, dpm_adaptive) hand back σ a few ulp away from the schedule's value.
SIGMA_RTOL = 1e-4


def blend_x0(x0_model: torch.Tensor, x0_orig: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x0 = w·x0_model + (1 − w)·x0_orig, returning x0_model itself where every w is 1.

    `torch.lerp` is exact at both ends (w = 0 gives x0_orig, w = 1 gives x0_model), so pixels
    with weight 0 or 1 carry no rounding from the blend.

    Args:
        x0_model: The model's clean estimate [B, C, H, W].
        x0_orig: The clean original, broadcastable to x0_model.
        weight: Per-pixel weight in [0, 1], broadcastable to x0_model.
    """
    if bool((weight == 1).all()):
        return x0_model
    x0_orig = x0_orig.to(x0_model)
    if bool((weight == 0).all()):
        return x0_orig.expand_as(x0_model).clone()
    return torch.lerp(x0_orig, x0_model, weight.to(x0_model))


def start_sigmas(sigmas: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Per-pixel σ at which a pixel of scale m joins the schedule (strength mode).

    With N = len(sigmas) − 1 steps a pixel joins at step k = N − round(m·N) (round half up), so
    m = 1 starts at sigmas[0], m = 0 never starts (σ_start = sigmas[N], usually 0), and m = 0.5
    runs the last half of the steps: a stock img2img at denoise m on the same σ grid.

    Args:
        sigmas: The run's schedule [N + 1], decreasing (read before sampling: uni_pc edits the last).
        scale: Per-pixel scale m [H, W] in [0, 1].
    """
    sigmas = sigmas.detach().flatten().to(torch.float64).cpu()
    n = sigmas.numel() - 1
    if n < 1:
        raise ValueError(f"sigmas must hold at least 2 values; got {sigmas.numel()}")
    k = n - torch.floor(scale.to(torch.float64).cpu() * n + 0.5).long()
    return sigmas[k.clamp(0, n)]


class PreserveState:
    """The preservation of one sampling run: original, scale map, mode and (strength) noise.

    Args:
        x0_orig: Clean original in model space [B or 1, C, H, W].
        scale: Per-pixel scale m [H, W] in [0, 1], or [B, H, W]: one map per sample.
        mode: "blend" or "strength".
        sigmas: The run's schedule (strength: where each pixel starts).
        noise: The run's initial noise [B, C, H, W] (strength: re-noises held pixels).
        renoise: `renoise(sigma[B], noise, x0)` → the original at σ (the model's noise scaling).
    """

    def __init__(
        self,
        x0_orig: torch.Tensor,
        scale: torch.Tensor,
        mode: str,
        sigmas: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        renoise: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ):
        self.mode = check_choice("mode", mode, MODES)
        size = tuple(x0_orig.shape[-2:])
        if scale.dim() not in (2, 3) or tuple(scale.shape[-2:]) != size:
            raise ValueError(f"scale must be [H, W] or [B, H, W] with (H, W) = {size}; got shape {tuple(scale.shape)}")
        self.x0_orig = x0_orig
        self.scale = scale.to(torch.float32).reshape(-1, 1, *size)  # [1 or B, 1, H, W]
        self.zero = self.scale == 0
        self._blend_weight = self.scale
        if mode == "strength":
            if sigmas is None or noise is None or renoise is None:
                raise ValueError("strength mode needs the run's sigmas, noise and a renoise function")
            self.sigma_start = start_sigmas(sigmas, self.scale).to(torch.float32)
            self.noise, self.renoise = noise, renoise

    def _sigma(self, sigma: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return sigma.reshape(-1, *([1] * (like.dim() - 1))).to(like.device, torch.float32)

    def held(self, sigma: torch.Tensor) -> torch.Tensor:
        """Strength mode: bool [B, 1, H, W], True where the pixel has not started at this σ ([B])."""
        s = self._sigma(sigma, self.x0_orig)
        return s > self.sigma_start.to(s.device) * (1 + SIGMA_RTOL)

    def weight(self, sigma: torch.Tensor) -> torch.Tensor:
        """Per-pixel weight of the model's x0 at σ: [1, 1, H, W] (blend) or [B, 1, H, W] (strength)."""
        if self.mode == "blend":
            return self._blend_weight
        return (~self.held(sigma)).to(torch.float32)

    def any_weight(self, sigma: torch.Tensor) -> torch.Tensor:
        """[1 or B', 1, H, W]: the weight at the smallest σ of `sigma`, for deciding which tiles to evaluate.

        Weights only grow as σ falls, so this is non-zero wherever any row's weight is; it also
        serves an input whose rows (cond and uncond batched) outnumber the per-sample maps.
        """
        if self.mode == "blend":
            return self._blend_weight
        return self.weight(sigma.reshape(-1).amin().reshape(1))

    def hold_input(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Strength mode: the model input with held pixels set to the re-noised original."""
        if self.mode != "strength":
            return x
        held = self.held(sigma)
        if not bool(held.any()):
            return x
        orig = self.renoise(sigma, self.noise.to(x), self.x0_orig.to(x).expand_as(x))
        return torch.where(held, orig, x)

    def blend(self, x0_model: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The preserved x0 for one evaluation at σ."""
        return blend_x0(x0_model, self.x0_orig, self.weight(sigma))

    def write_back(self, samples: torch.Tensor) -> torch.Tensor:
        """After the schedule: the original, exactly, wherever the scale is 0."""
        if not bool(self.zero.any()):
            return samples
        return torch.where(self.zero, self.x0_orig.to(samples), samples)
