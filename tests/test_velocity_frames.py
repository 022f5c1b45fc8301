"""Frame conversion keeps x0 and ε: t = σ/(1 + σ), x_flow = x/(1 + σ), and back."""

import pytest
import torch

from solune.velocity import Epsilon, LuneFlow, SolV, convert_state
from solune.velocity.frames import ddpm_to_flow, flow_to_ddpm


def test_ddpm_state_becomes_the_flow_state_of_the_same_x0_and_noise():
    x0, eps = torch.randn(2, 4, 6, 6, dtype=torch.float64), torch.randn(2, 4, 6, 6, dtype=torch.float64)
    sigma = torch.tensor([0.3, 7.0], dtype=torch.float64)
    x = x0 + sigma.view(-1, 1, 1, 1) * eps
    x_flow, t = ddpm_to_flow(x, sigma)
    torch.testing.assert_close(t, sigma / (1 + sigma))
    tt = t.view(-1, 1, 1, 1)
    torch.testing.assert_close(x_flow, (1 - tt) * x0 + tt * eps, rtol=0, atol=1e-12)
    back, sigma_back = flow_to_ddpm(x_flow, t)
    torch.testing.assert_close(back, x, rtol=0, atol=1e-12)
    torch.testing.assert_close(sigma_back, sigma, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "src,dst", [(Epsilon(), LuneFlow()), (SolV(), LuneFlow()), (LuneFlow(), SolV()), (SolV(), Epsilon())]
)
def test_each_object_reads_the_same_x0_from_a_converted_state(src, dst):
    x0, eps = torch.randn(1, 4, 5, 5, dtype=torch.float64), torch.randn(1, 4, 5, 5, dtype=torch.float64)
    sigma = torch.tensor(0.6 if src.frame == "flow" else 2.5, dtype=torch.float64)
    x = src.add_noise(x0, eps, sigma)
    x2, sigma2 = convert_state(x, sigma, src.frame, dst.frame)
    # the outputs each type would give for that state, computed in its own frame, mean the same x0
    torch.testing.assert_close(dst.to_x0(dst.from_x0(x0, x2, sigma2), x2, sigma2), x0, rtol=0, atol=1e-10)
    torch.testing.assert_close(dst.x0_to("epsilon", x0, x2, sigma2), eps, rtol=0, atol=1e-9)
    torch.testing.assert_close(dst.remove_noise(x2, eps, sigma2), x0, rtol=0, atol=1e-10)


def test_unknown_frame_is_refused():
    with pytest.raises(ValueError, match="frame must be one of ddpm, flow"):
        convert_state(torch.zeros(1, 4, 2, 2), 1.0, "ddpm", "vp")
