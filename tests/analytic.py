"""Analytic denoisers whose exact answer is known in closed form (Gaussian data).

Data x0 ~ N(μ, diag(s²)). A state x = A·x0 + B·ε (ε ~ N(0, I)) has the posterior mean
    E[x0 | x] = μ + A·s²/(A²·s² + B²) · (x − A·μ),
and along the probability-flow ODE z = (x − A·μ)/sqrt(A²·s² + B²) is conserved, so a sample that
starts at standardised noise z ends, exactly, at μ + s·z.
"""

from __future__ import annotations

import torch


class GaussianData:
    """Per-channel Gaussian data with mean `mu` and std `std` ([C] tensors)."""

    def __init__(self, mu, std):
        self.mu = torch.as_tensor(mu, dtype=torch.float64)
        self.std = torch.as_tensor(std, dtype=torch.float64)

    def _b(self, t, x):
        return t.to(x.dtype).view(1, -1, *([1] * (x.ndim - 2)))

    def posterior_mean(self, x: torch.Tensor, A, B) -> torch.Tensor:
        mu, var = self._b(self.mu, x), self._b(self.std**2, x)
        return mu + A * var / (A * A * var + B * B) * (x - A * mu)

    def marginal_state(self, z: torch.Tensor, A, B) -> torch.Tensor:
        """The state at (A, B) whose standardised noise is z."""
        mu, var = self._b(self.mu, z), self._b(self.std**2, z)
        return A * mu + (A * A * var + B * B).sqrt() * z

    def ode_endpoint(self, z: torch.Tensor) -> torch.Tensor:
        """Exact probability-flow ODE endpoint of standardised noise z: μ + s·z."""
        return self._b(self.mu, z) + self._b(self.std, z) * z


def native_model(obj, data: GaussianData):
    """A "network" for prediction object `obj`: it returns the exact posterior mean expressed in
    obj's native output type (ε, Sol v or flow v) for the sampler state x at σ."""

    def model(x, sigma):
        A, B = obj.coefficients(sigma, x.ndim, x)
        return obj.from_x0(data.posterior_mean(x, A, B), x, sigma)

    return model
