"""One object per prediction type: epsilon, Sol (DDPM v-prediction) and Lune (rectified flow).

Every object describes the sampler's state as x = A(σ)·x0 + B(σ)·ε in its own *frame*:

* DDPM frame (epsilon, sol_v): A = 1, B = σ with σ = sqrt((1 − ᾱ)/ᾱ) — k-diffusion's
  variance-exploding view of DDPM; the network sees the variance-preserving x_t = x/sqrt(1 + σ²).
* flow frame (lune_flow): A = 1 − σ, B = σ — the network sees x itself.

Given (A, B) the three output types are affine in x0 at fixed (x, σ), with N = sqrt(A² + B²),
a = A/N, s = B/N, x_t = x/N:

* ε       = (x − A·x0)/B                   x0 = (x − B·ε)/A
* Sol v   = a·ε − s·x0                      x0 = a·x_t − s·v          (a² + s² = 1)
* flow v  = ε − x0                          x0 = (x − B·v)/(A + B)

ε, Sol v and flow v depend only on (x0, ε), not on the frame, so they convert into one
another for the same state in any frame. The sampler's velocity d = (x − x0)/σ is ε in the
DDPM frame and the flow velocity in the flow frame.

The objects expose what ComfyUI's `ModelSamplingDiscrete` / `ModelSamplingDiscreteFlow` expose
(`sigmas`, `log_sigmas`, `sigma_min`, `sigma_max`, `sigma_data`, `timestep`, `sigma`,
`percent_to_sigma`, `calculate_input`, `calculate_denoised`, `noise_scaling`,
`inverse_noise_scaling`), so one can be handed to ComfyUI as `model_sampling` as it is. ComfyUI's
flow samplers recognise flow models by `isinstance(…, comfy.model_sampling.CONST)`; the node
layer combines these classes with ComfyUI's prediction classes for that reason.
"""

from __future__ import annotations

import torch

from ..checks import check_bool, check_choice
from . import schedule as sch

OUTPUT_TYPES = ("epsilon", "sol_v", "flow_v")


def _view(sigma, ndim: int, like: torch.Tensor | None = None) -> torch.Tensor:
    """σ as a tensor that broadcasts against an ndim-dimensional batch (scalar or per-sample)."""
    if not torch.is_tensor(sigma):
        sigma = torch.tensor(sigma, dtype=like.dtype if like is not None else torch.float32)
    if like is not None:
        sigma = sigma.to(device=like.device)
    if sigma.nelement() == 1:
        return sigma.reshape(())
    return sigma.reshape(sigma.shape[:1] + (1,) * (ndim - 1))


def _check_output_type(kind: str) -> str:
    return check_choice("output type", kind, OUTPUT_TYPES)


class VelocityModelSampling(torch.nn.Module):
    """Common interface of the three prediction types (see the module docstring)."""

    #: name of the prediction type ("epsilon", "sol_v", "lune_flow")
    prediction: str = ""
    #: the model's native output type (one of OUTPUT_TYPES)
    output_type: str = ""
    #: "ddpm" or "flow"
    frame: str = ""
    sigma_data = 1.0

    # ------------------------------------------------------------------ frame
    def coefficients(self, sigma, ndim: int = 0, like: torch.Tensor | None = None):
        """(A, B) with x = A·x0 + B·ε at noise level σ in this object's frame."""
        raise NotImplementedError

    # ------------------------------------------------------------ conversions
    def x0_to(self, kind: str, x0: torch.Tensor, x: torch.Tensor, sigma) -> torch.Tensor:
        """The output of type `kind` ("epsilon", "sol_v", "flow_v") that means clean latent x0
        at state (x, σ)."""
        _check_output_type(kind)
        A, B = self.coefficients(sigma, x.ndim, x)
        eps = (x - A * x0) / B
        if kind == "epsilon":
            return eps
        if kind == "flow_v":
            return eps - x0
        norm = (A * A + B * B).sqrt()
        return (A * eps - B * x0) / norm

    def x0_from(self, kind: str, output: torch.Tensor, x: torch.Tensor, sigma) -> torch.Tensor:
        """The clean-latent estimate x0 that an output of type `kind` means at state (x, σ)."""
        _check_output_type(kind)
        A, B = self.coefficients(sigma, x.ndim, x)
        if kind == "epsilon":
            return (x - B * output) / A
        if kind == "flow_v":
            return (x - B * output) / (A + B)
        norm2 = A * A + B * B
        return x * A / norm2 - output * B / norm2.sqrt()

    def to_x0(self, output: torch.Tensor, x: torch.Tensor, sigma) -> torch.Tensor:
        """Model output (this type's native kind) → x0."""
        return self.x0_from(self.output_type, output, x, sigma)

    def from_x0(self, x0: torch.Tensor, x: torch.Tensor, sigma) -> torch.Tensor:
        """x0 → the model output (native kind) that yields it; exact inverse of `to_x0` for σ > 0."""
        return self.x0_to(self.output_type, x0, x, sigma)

    def convert(self, output: torch.Tensor, x: torch.Tensor, sigma, src: str, dst: str) -> torch.Tensor:
        """Convert an output of type `src` into type `dst` for the same state (x, σ)."""
        return self.x0_to(dst, self.x0_from(src, output, x, sigma), x, sigma)

    @staticmethod
    def velocity(x: torch.Tensor, x0: torch.Tensor, sigma) -> torch.Tensor:
        """The sampler's velocity d = (x − x0)/σ (k-diffusion's `to_d`)."""
        return (x - x0) / _view(sigma, x.ndim, x)

    # ---------------------------------------------------------------- noising
    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, sigma) -> torch.Tensor:
        """The state A·x0 + B·noise at noise level σ."""
        A, B = self.coefficients(sigma, x0.ndim, x0)
        return A * x0 + B * noise

    def remove_noise(self, x: torch.Tensor, noise: torch.Tensor, sigma) -> torch.Tensor:
        """Exact inverse of `add_noise` given the same noise: x0 = (x − B·noise)/A."""
        A, B = self.coefficients(sigma, x.ndim, x)
        return (x - B * noise) / A

    def noise_scaling(self, sigma, noise, latent_image, max_denoise: bool = False):
        """ComfyUI's start-of-sampling noising."""
        raise NotImplementedError

    def inverse_noise_scaling(self, sigma, latent):
        """ComfyUI's end-of-sampling step."""
        raise NotImplementedError

    # ---------------------------------------------------------------- network
    def calculate_input(self, sigma, noise):
        """What the network sees for sampler state `noise` at σ."""
        raise NotImplementedError

    def calculate_denoised(self, sigma, model_output, model_input):
        """ComfyUI's name for `to_x0` (argument order as ComfyUI calls it)."""
        return self.to_x0(model_output, model_input, sigma)

    # ------------------------------------------------------------- σ tables
    @property
    def sigma_min(self) -> torch.Tensor:
        return self.sigmas[0]

    @property
    def sigma_max(self) -> torch.Tensor:
        return self.sigmas[-1]

    def extra_repr(self) -> str:
        return f"prediction={self.prediction!r}, frame={self.frame!r}"


class _DDPMFrame(VelocityModelSampling):
    """DDPM-schedule objects (epsilon, sol_v): SD1.5's 1000-step discrete schedule."""

    frame = "ddpm"

    def __init__(
        self,
        zero_terminal_snr: bool = False,
        num_timesteps: int = sch.SD15_TIMESTEPS,
        linear_start: float = sch.SD15_LINEAR_START,
        linear_end: float = sch.SD15_LINEAR_END,
    ):
        super().__init__()
        self.zsnr = bool(zero_terminal_snr)
        self.num_timesteps = int(num_timesteps)
        self.linear_start = float(linear_start)
        self.linear_end = float(linear_end)
        alphas_cumprod = sch.ddpm_alphas_cumprod(num_timesteps, linear_start, linear_end, self.zsnr)
        #: float64 ᾱ table (not a buffer: model casts never touch it)
        self.alphas_cumprod = alphas_cumprod
        sigmas = sch.sigmas_from_alphas_cumprod(alphas_cumprod)
        self.register_buffer("sigmas", sigmas.float())
        self.register_buffer("log_sigmas", sigmas.log().float())

    def coefficients(self, sigma, ndim: int = 0, like: torch.Tensor | None = None):
        s = _view(sigma, ndim, like)
        return torch.ones_like(s), s

    def calculate_input(self, sigma, noise):
        sigma = _view(sigma, noise.ndim, noise)
        return noise / (sigma**2 + self.sigma_data**2) ** 0.5

    def noise_scaling(self, sigma, noise, latent_image, max_denoise: bool = False):
        sigma = _view(sigma, noise.ndim, noise)
        # max_denoise: the first σ is the schedule's largest, so start from unit-variance x_T
        # (noise·sqrt(1 + σ²)), as ComfyUI does for a full-denoise run.
        scale = torch.sqrt(1.0 + sigma**2.0) if max_denoise else sigma
        return noise * scale + latent_image

    def inverse_noise_scaling(self, sigma, latent):
        return latent

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """σ → the nearest discrete timestep index (the UNet's t), nearest in log σ."""
        log_sigma = sigma.log()
        dists = log_sigma.to(self.log_sigmas.device) - self.log_sigmas[:, None]
        return dists.abs().argmin(dim=0).view(sigma.shape).to(sigma.device)

    def sigma(self, timestep: torch.Tensor) -> torch.Tensor:
        """Timestep (possibly fractional) → σ, interpolating log σ between table entries."""
        t = torch.clamp(timestep.float().to(self.log_sigmas.device), min=0, max=len(self.sigmas) - 1)
        low, high, w = t.floor().long(), t.ceil().long(), t.frac()
        log_sigma = (1 - w) * self.log_sigmas[low] + w * self.log_sigmas[high]
        return log_sigma.exp().to(timestep.device)

    def sigma_from_timestep(self, timestep: torch.Tensor) -> torch.Tensor:
        """Inverse of `timestep` on the grid (same as `sigma`)."""
        return self.sigma(timestep)

    def percent_to_sigma(self, percent: float) -> float:
        """Fraction of the schedule done → σ (0 → "infinitely" noisy, 1 → 0)."""
        if percent <= 0.0:
            return 999999999.9
        if percent >= 1.0:
            return 0.0
        return self.sigma(torch.tensor((1.0 - percent) * (len(self.sigmas) - 1))).item()

    def extra_repr(self) -> str:
        return super().extra_repr() + f", zero_terminal_snr={self.zsnr}"


class Epsilon(_DDPMFrame):
    """Standard SD1.5: the network predicts the noise ε."""

    prediction = "epsilon"
    output_type = "epsilon"

    def to_x0(self, output, x, sigma):
        return x - output * _view(sigma, x.ndim, x)


class SolV(_DDPMFrame):
    """Sol: DDPM v-prediction, v = a·ε − s·x0 with a = sqrt(ᾱ), s = sqrt(1 − ᾱ)."""

    prediction = "sol_v"
    output_type = "sol_v"


class LuneFlow(VelocityModelSampling):
    """Lune: rectified flow, x = σ·noise + (1 − σ)·x0, v = noise − x0, timestep = 1000·σ.

    Every σ this object hands out (its table, `sigma`, `percent_to_sigma`) is already shifted
    with σ' = k·t/(1 + (k − 1)·t); `timestep` maps the shifted σ to 1000·σ. Do not shift twice.
    """

    prediction = "lune_flow"
    output_type = "flow_v"
    frame = "flow"

    def __init__(self, shift: float = 2.0, multiplier: float = 1000.0, num_timesteps: int = 1000):
        super().__init__()
        self.shift = sch.check_shift(shift)
        self.multiplier = float(multiplier)
        self.num_timesteps = int(num_timesteps)
        t = torch.arange(1, self.num_timesteps + 1, dtype=torch.float64) / self.num_timesteps
        self.register_buffer("sigmas", sch.flow_shift(t, self.shift).float())
        self.register_buffer("log_sigmas", self.sigmas.log())

    def coefficients(self, sigma, ndim: int = 0, like: torch.Tensor | None = None):
        s = _view(sigma, ndim, like)
        return 1.0 - s, s

    def to_x0(self, output, x, sigma):
        return x - output * _view(sigma, x.ndim, x)

    def calculate_input(self, sigma, noise):
        return noise

    def noise_scaling(self, sigma, noise, latent_image, max_denoise: bool = False):
        sigma = _view(sigma, noise.ndim, noise)
        return sigma * noise + (1.0 - sigma) * latent_image

    def inverse_noise_scaling(self, sigma, latent):
        # A run that stops at σ > 0 leaves (1 − σ)·x0 + σ·ε; dividing by 1 − σ is ComfyUI's choice.
        return latent / (1.0 - _view(sigma, latent.ndim, latent))

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """Shifted σ → the network's timestep 1000·σ."""
        return sigma * self.multiplier

    def sigma(self, timestep: torch.Tensor) -> torch.Tensor:
        """ComfyUI semantics: an *unshifted* schedule time t·1000 → shifted σ (used by schedulers)."""
        return sch.flow_shift(timestep / self.multiplier, self.shift)

    def sigma_from_timestep(self, timestep: torch.Tensor) -> torch.Tensor:
        """Exact inverse of `timestep`: σ = timestep/1000."""
        return timestep / self.multiplier

    def percent_to_sigma(self, percent: float) -> float:
        if percent <= 0.0:
            return 1.0
        if percent >= 1.0:
            return 0.0
        return float(sch.flow_shift(1.0 - percent, self.shift))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", shift={self.shift}"


PREDICTION_TYPES = {"epsilon": Epsilon, "sol_v": SolV, "lune_flow": LuneFlow}


def make_prediction(name: str, shift: float = 2.0, zero_terminal_snr: bool = False, cls=None) -> VelocityModelSampling:
    """Build the velocity-core object for a prediction type.

    Args:
        name: "epsilon", "sol_v" or "lune_flow".
        shift: flow shift k (used by lune_flow; must be finite and > 0 for every type).
        zero_terminal_snr: rescale the DDPM schedule to zero terminal SNR (epsilon, sol_v).
            Rectified flow already ends at pure noise (σ = 1), so lune_flow has nothing to rescale.
        cls: optional subclass of the type's class to instantiate (the node layer passes one
            that also inherits ComfyUI's prediction class).
    """
    check_choice("prediction", name, tuple(PREDICTION_TYPES))
    shift = sch.check_shift(shift)
    check_bool("zero_terminal_snr", zero_terminal_snr)
    base = PREDICTION_TYPES[name]
    if cls is None:
        cls = base
    elif not issubclass(cls, base):
        raise TypeError(f"cls must subclass {base.__name__}; got {cls!r}")
    if base is LuneFlow:
        return cls(shift=shift)
    return cls(zero_terminal_snr=zero_terminal_snr)
