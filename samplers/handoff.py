"""Which expert answers at a given σ, and how its answer reaches the sampler.

A run samples in one frame (the *run* frame: DDPM x = x0 + σ·ε, or flow x = (1 − σ)·x0 + σ·ε)
with one σ schedule. At every model evaluation:

1. the detail weight λ(σ) ∈ [0, 1] is read off the schedule position (below);
2. each expert that is needed (λ < 1: structure, λ > 0: detail) gets the *same* (x0, ε) state
   expressed in its own frame (`solune.velocity.frames.convert_state`) and returns x0;
3. x0 is frame independent (the same clean latent in either frame), so the answers are blended
   directly: x0 = (1 − λ)·x0_structure + λ·x0_detail (λ = 0 and λ = 1 return one expert's x0 as
   it is, bit for bit).

Switch position. `switch` is a fraction of the run model's noise schedule, the unit of ComfyUI's
"start/end percent" inputs: the structure expert handles σ > σ_switch = percent_to_sigma(switch),
the detail expert σ ≤ σ_switch. 0 hands the whole run to the detail expert, 1 keeps it with the
structure expert. It does not depend on the sampler or the step count.

Crossfade. With blend width w > 0, λ = smoothstep((p − switch)/w + 1/2) where p is the schedule
fraction of σ (the inverse of percent_to_sigma, found by bisection): λ rises from 0 at
p = switch − w/2 to 1 at p = switch + w/2, ½ at the switch; both experts run inside the window only.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..checks import check_number
from ..velocity import FRAMES, convert_state


def smoothstep(u: torch.Tensor) -> torch.Tensor:
    """3u² − 2u³ on [0, 1], clamped outside."""
    u = u.clamp(0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


class ExpertHandoff:
    """The switch/crossfade rule and the frame routing of a two-expert run.

    Args:
        run_frame, structure_frame, detail_frame: "ddpm" or "flow".
        percent_to_sigma: the run model's map from schedule fraction to σ (decreasing).
        switch: fraction of the schedule at which control passes, in [0, 1].
        blend_width: crossfade width in schedule fraction, in [0, 1] (0: hard switch).
    """

    BISECTION_STEPS = 60

    def __init__(
        self,
        run_frame: str,
        structure_frame: str,
        detail_frame: str,
        percent_to_sigma: Callable[[float], float],
        switch: float,
        blend_width: float = 0.0,
    ):
        frames = (("run_frame", run_frame), ("structure_frame", structure_frame), ("detail_frame", detail_frame))
        for name, frame in frames:
            if frame not in FRAMES:
                raise ValueError(f"{name} must be one of {', '.join(FRAMES)}; got {frame!r}")
        self.run_frame, self.structure_frame, self.detail_frame = run_frame, structure_frame, detail_frame
        self.switch = check_number("switch", switch, 0.0, 1.0)
        self.blend_width = check_number("blend_width", blend_width, 0.0, 1.0)
        self.percent_to_sigma = percent_to_sigma
        self.sigma_switch = float(percent_to_sigma(self.switch))
        if self.blend_width > 0:
            self.p_start = self.switch - self.blend_width / 2
            self.p_end = self.switch + self.blend_width / 2
            # σ above sigma_high: structure only; σ at or below sigma_low: detail only
            self.sigma_high = float(percent_to_sigma(max(0.0, self.p_start)))
            self.sigma_low = float(percent_to_sigma(min(1.0, self.p_end)))

    # ------------------------------------------------------------------ weights
    def sigma_to_percent(self, sigma: float) -> float:
        """Schedule fraction p with percent_to_sigma(p) = σ (bisection; percent_to_sigma decreases)."""
        low, high = 0.0, 1.0
        for _ in range(self.BISECTION_STEPS):
            mid = 0.5 * (low + high)
            if float(self.percent_to_sigma(mid)) > sigma:
                low = mid
            else:
                high = mid
        return 0.5 * (low + high)

    def detail_weight(self, sigma: torch.Tensor) -> torch.Tensor:
        """λ(σ) per batch element, float64 on the CPU: 0 = structure expert only, 1 = detail only."""
        values = sigma.detach().reshape(-1).double().cpu().tolist()
        if self.blend_width == 0:
            return torch.tensor([1.0 if s <= self.sigma_switch else 0.0 for s in values], dtype=torch.float64)
        out = []
        for s in values:
            if s > self.sigma_high:
                out.append(0.0)
            elif s <= self.sigma_low:
                out.append(1.0)
            else:
                u = (self.sigma_to_percent(s) - self.p_start) / self.blend_width
                out.append(float(smoothstep(torch.tensor(u, dtype=torch.float64))))
        return torch.tensor(out, dtype=torch.float64)

    # ------------------------------------------------------------------ routing
    def state_for(self, x: torch.Tensor, sigma: torch.Tensor, frame: str, who: str):
        """The run-frame state (x, σ) expressed in `frame` (same x0 and ε)."""
        if self.run_frame == "flow" and frame == "ddpm" and bool((sigma >= 1).any()):
            raise ValueError(
                f"the {who} expert (DDPM frame) cannot be evaluated at flow σ = 1: pure noise is an infinite "
                f"DDPM σ. Let the flow expert take the first step (raise switch above 0) or start the "
                f"schedule below σ = 1."
            )
        return convert_state(x, sigma, self.run_frame, frame)

    def evaluate(self, x: torch.Tensor, sigma: torch.Tensor, structure_fn, detail_fn) -> torch.Tensor:
        """x0 for the run-frame state (x, σ); `*_fn(x', σ')` returns x0 for its own frame's state."""
        lam = self.detail_weight(sigma)
        need_structure, need_detail = bool((lam < 1).any()), bool((lam > 0).any())
        x0_structure = None
        if need_structure:
            x0_structure = structure_fn(*self.state_for(x, sigma, self.structure_frame, "structure"))
        x0_detail = detail_fn(*self.state_for(x, sigma, self.detail_frame, "detail")) if need_detail else None
        if not need_detail:
            return x0_structure
        if not need_structure:
            return x0_detail
        lam = lam.to(device=x0_structure.device, dtype=x0_structure.dtype)
        if lam.numel() == 1:
            lam = lam.expand(x0_structure.shape[0])
        lam = lam.view(-1, *([1] * (x0_structure.ndim - 1)))
        blend = x0_structure + lam * (x0_detail - x0_structure)
        return torch.where(lam >= 1, x0_detail, torch.where(lam <= 0, x0_structure, blend))
