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

import bisect
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ...checks import check_choice
from .settings import MODES

# Relative slack when comparing an evaluation's σ with a schedule σ: solvers that go through
# t = −log σ (dpm_fast, dpm_adaptive) hand back σ a few ulp away from the schedule's value.
SIGMA_RTOL = 1e-4


def blend_x0(
    x0_model: torch.Tensor, x0_orig: torch.Tensor, weight: torch.Tensor, every: float | None = None
) -> torch.Tensor:
    """x0 = w·x0_model + (1 − w)·x0_orig; x0_model itself when `every` is 1, the original when 0.

    `torch.lerp` is exact at both ends (w = 0 gives x0_orig, w = 1 gives x0_model), so pixels
    with weight 0 or 1 carry no rounding from the blend. `every` is what the caller knows from CPU
    data: the one value every weight has (0 or 1), or None; the weight itself is never read here
    (on a GPU that would wait for the device).

    Args:
        x0_model: The model's clean estimate [B, C, H, W].
        x0_orig: The clean original, broadcastable to x0_model.
        weight: Per-pixel weight in [0, 1], broadcastable to x0_model.
        every: 1.0 or 0.0 when every weight is known to be that value, else None.
    """
    if every == 1:
        return x0_model
    x0_orig = x0_orig.to(x0_model)
    if every == 0:
        return x0_orig.expand_as(x0_model).clone()
    return torch.lerp(x0_orig, x0_model, weight.to(x0_model))


@dataclass(frozen=True)
class Phase:
    """What CPU data says about one σ: which pixels follow the model (`active`, CPU bool [H, W]; with
    one scale map per sample, the pixels where some sample does).

    `key` names the active set (equal keys, equal sets); `every` is 1.0 / 0.0 when every pixel's
    weight is that value, else None.
    """

    key: int
    active: torch.Tensor
    every: float | None


def start_sigmas(sigmas: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Per-pixel σ at which a pixel of scale m joins the schedule (strength mode).

    With N = len(sigmas) − 1 steps a pixel joins at step k = N − round(m·N) (round half up), so
    m = 1 starts at sigmas[0], m = 0 never starts (σ_start = sigmas[N], usually 0), and m = 0.5
    runs the last half of the steps: a stock img2img at denoise m on the same σ grid.

    Args:
        sigmas: The run's schedule [N + 1], decreasing (read before sampling: uni_pc edits the last).
        scale: Per-pixel scale m in [0, 1], any shape ([H, W], or [B, 1, H, W] per sample).
    """
    sigmas = sigmas.detach().flatten().cpu().to(torch.float64)  # once per run, on the CPU
    n = sigmas.numel() - 1
    if n < 1:
        raise ValueError(f"sigmas must hold at least 2 values; got {sigmas.numel()}")
    k = n - torch.floor(scale.to(torch.float64).cpu() * n + 0.5).long()
    return sigmas[k.clamp(0, n)]


class PreserveState:
    """The preservation of one sampling run: original, scale map, mode and (strength) noise.

    Everything the per-step work decides on the host (which pixels are active, whether all or none
    are) comes from CPU copies made here, once per run; the device tensors are only computed with.
    In strength mode the current σ is read on the host once per model evaluation (`read_sigma`, then
    `phase`); ComfyUI's own samplers read σ on the host every step too (`sigmas[i + 1] == 0`, s_tmin ≤ σ).

    Args:
        x0_orig: Clean original in model space [B or 1, C, H, W] or [B or 1, C, T, H, W] (`frames`), on the
            model's device; the scale broadcasts over the channel and frame axes.
        scale: Per-pixel scale m [H, W] in [0, 1], or [B, H, W]: one map per sample (CPU; a device
            tensor is copied to the CPU once).
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
        if mode == "strength" and (sigmas is None or noise is None or renoise is None):
            raise ValueError("strength mode needs the run's sigmas, noise and a renoise function")
        device = x0_orig.device
        ones = [1] * (x0_orig.dim() - 3)  # the channel axis, and the frame axis of a [B, C, T, H, W] latent
        scale_cpu = scale.detach().to("cpu", torch.float32).reshape(-1, *ones, *size)  # [1 or B, 1, (1,) H, W]
        zero_cpu = scale_cpu == 0
        self.any_zero = bool(zero_cpu.any())
        self.x0_orig = x0_orig
        self.scale = scale_cpu.to(device)
        self.zero = zero_cpu.to(device)
        self._blend_weight = self.scale
        if mode == "blend":
            every = 1.0 if bool((scale_cpu == 1).all()) else 0.0 if bool(zero_cpu.all()) else None
            self._phases = {0: Phase(0, (~zero_cpu).reshape(-1, *size).any(dim=0), every)}
            self._limits_cpu = None
        else:
            # a pixel is held while σ > σ_start·(1 + SIGMA_RTOL): the same float32 numbers on both sides
            self._limits_cpu = start_sigmas(sigmas, scale_cpu).to(torch.float32) * (1 + SIGMA_RTOL)
            self._limits = sorted({float(v) for v in self._limits_cpu.flatten().tolist()})
            self._phases = {}
            self.limits = self._limits_cpu.to(device)
            self.noise, self.renoise = noise.to(device), renoise

    @property
    def reads_sigma(self) -> bool:
        """Whether the hook reads σ on the host per evaluation (strength mode: the active set changes with σ)."""
        return self.mode == "strength"

    def read_sigma(self, sigma: torch.Tensor) -> float:
        """The evaluation's σ on the host (its smallest row): one read, where `phase` needs it."""
        return float(sigma.detach().min())

    def phase(self, sigma: float | None = None) -> Phase:
        """The active set at host σ `sigma` (strength mode; None: every pixel that may ever start)."""
        if self.mode == "blend":
            return self._phases[0]
        if sigma is None:
            key = 0
        else:
            s32 = float(torch.tensor(sigma, dtype=torch.float32))
            key = bisect.bisect_left(self._limits, s32)  # how many distinct limits σ exceeds
        if key not in self._phases:
            # held ⟺ σ > limit ⟺ the limit is one of the `key` smallest distinct limits
            limits = self._limits_cpu
            held = limits <= self._limits[key - 1] if key else torch.zeros(limits.shape, dtype=torch.bool)
            every = 0.0 if bool(held.all()) else 1.0 if not bool(held.any()) else None
            self._phases[key] = Phase(key, (~held).reshape(-1, *limits.shape[-2:]).any(dim=0), every)
        return self._phases[key]

    def _sigma(self, sigma: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return sigma.reshape(-1, *([1] * (like.dim() - 1))).to(like.device, torch.float32)

    def held(self, sigma: torch.Tensor) -> torch.Tensor:
        """Strength mode: bool [B, 1, H, W], True where the pixel has not started at this σ ([B])."""
        s = self._sigma(sigma, self.x0_orig)
        return s > self.limits.to(s.device)

    def weight(self, sigma: torch.Tensor) -> torch.Tensor:
        """Per-pixel weight of the model's x0 at σ: [1 or B, 1, H, W] (blend: the scale) or [B, 1, H, W]."""
        if self.mode == "blend":
            return self._blend_weight
        return (~self.held(sigma)).to(torch.float32)

    def hold_input(self, x: torch.Tensor, sigma: torch.Tensor, phase: Phase | None = None) -> torch.Tensor:
        """Strength mode: the model input with held pixels set to the re-noised original."""
        if self.mode != "strength" or (phase is not None and phase.every == 1):
            return x
        orig = self.renoise(sigma, self.noise.to(x), self.x0_orig.to(x).expand_as(x))
        return torch.where(self.held(sigma), orig, x)

    def blend(self, x0_model: torch.Tensor, sigma: torch.Tensor, phase: Phase | None = None) -> torch.Tensor:
        """The preserved x0 for one evaluation at σ (`phase`: what the CPU knows about σ, if read)."""
        every = self._phases[0].every if self.mode == "blend" else phase.every if phase is not None else None
        return blend_x0(x0_model, self.x0_orig, self.weight(sigma), every)

    def write_back(self, samples: torch.Tensor) -> torch.Tensor:
        """After the schedule: the original, exactly, wherever the scale is 0."""
        if not self.any_zero:
            return samples
        return torch.where(self.zero, self.x0_orig.to(samples), samples)
