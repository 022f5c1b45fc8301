"""One sampling run of the tiled img2img hook, in pure torch: what every model evaluation does.

`TiledRun` joins the run's `PreserveState` (original, scale map, strength-mode noise) with the
plan's active-window rule. Per evaluation, in the order ComfyUI calls the hook's pieces:

1. `enter(σ)` (PREDICT_NOISE, strength mode only): reads σ on the host once and looks up which
   pixels follow the model at this σ (`PreserveState.phase`, precomputed CPU data); `leave()` after.
2. `hold_input(x, σ)`: strength mode's held pixels become the original re-noised to σ.
3. `evaluate(denoise, x, chunks)` (APPLY_MODEL, tiled evaluation): the model only on the windows
   that cover the active pixels grown by the margin (`windows.window_set`, cached per active set),
   the original elsewhere; never called when no pixel is active.
4. `blend(x0, σ)` (post-CFG): x0 = lerp(original, model, weight).

Nothing here reads a device tensor on the host except the one σ in `enter`; the window sets and
their device copies of the weights are built once per active set.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...checks import check_int
from .evaluate import evaluate_windows
from .plan import TilePlan
from .preserve import Phase, PreserveState
from .windows import WindowSet, window_set


def plan_windows(plan: TilePlan, active: torch.Tensor, margin: int | None = None) -> WindowSet | None:
    """The windows the hook evaluates for the active pixels `active` (CPU bool [H, W]); None if none.

    `margin` (latent units) defaults to the plan's overlap, as in `TiledRun`; the regional VAE passes
    (`solune.image`) ask the same question to know which latent the model will read.
    """
    layout = plan.layout
    margin = plan.overlap if margin is None else margin
    max_window = plan.max_window or (max(t.h for t in layout.tiles), max(t.w for t in layout.tiles))
    return window_set(layout, plan.weights, active, margin, *max_window, plan.overlap, plan.falloff)


class TiledRun:
    """The per-run state of the tiled hook.

    Args:
        state: The run's preservation state.
        plan: The tile plan (layout, weights, largest window, overlap, falloff).
        margin: Context kept around active pixels, latent units; default the plan's overlap.
    """

    def __init__(self, state: PreserveState, plan: TilePlan, margin: int | None = None):
        self.state, self.plan = state, plan
        self.margin = plan.overlap if margin is None else check_int("margin", margin, 0, hint="latent units")
        self.current: Phase | None = None
        self._windows: dict[int, WindowSet | None] = {}

    def enter(self, sigma: torch.Tensor) -> Phase | None:
        """Start one evaluation at σ: strength mode reads σ on the host (once) and keeps its phase."""
        self.current = self.state.phase(self.state.read_sigma(sigma)) if self.state.reads_sigma else None
        return self.current

    def leave(self) -> None:
        """End the evaluation started by `enter`."""
        self.current = None

    def phase(self) -> Phase:
        """The current phase; without `enter` (strength mode): every pixel that may start."""
        return self.current if self.current is not None else self.state.phase(None)

    def hold_input(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return self.state.hold_input(x, sigma, self.current)

    def blend(self, x0_model: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return self.state.blend(x0_model, sigma, self.current)

    def windows(self) -> WindowSet | None:
        """The windows of the current active set (None: nothing active), built once per set."""
        phase = self.phase()
        if phase.key not in self._windows:
            self._windows[phase.key] = plan_windows(self.plan, phase.active, self.margin)
        return self._windows[phase.key]

    def evaluate(
        self,
        denoise: Callable[[torch.Tensor, WindowSet, list[int]], torch.Tensor],
        x: torch.Tensor,
        batch_size: int,
        chunks: int = 1,
        progress: Callable[[int, int], None] | None = None,
    ) -> torch.Tensor:
        """x0 of the model input x from the windows of the current σ; the original where none reaches.

        Args:
            denoise: `denoise(x_crops, windows, indices)` → x0 of the crops: the caller evaluates
                them (and crops its conditioning with `tile_args(value, windows, indices, ...)`).
            x: Model input [B, C, H, W], B a multiple of `chunks`.
            batch_size: Largest number of equal windows per call.
            chunks: How many equal sub-batches x holds (cond/uncond).
            progress: `progress(done, total)` after each batch.
        """
        fill = self.state.x0_orig.to(x)
        if fill.shape[0] not in (1, x.shape[0]):
            fill = fill.repeat(x.shape[0] // fill.shape[0], *([1] * (fill.dim() - 1)))
        windows = self.windows()
        if windows is None:
            return fill.expand_as(x).clone()
        return evaluate_windows(
            lambda crops, idx: denoise(crops, windows, idx), x, windows, fill, batch_size, chunks, progress
        )
