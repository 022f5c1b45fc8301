"""Tier 2, in process: SolunePredictionType in a real ComfyUI matches ComfyUI's own objects and
samplers."""

from __future__ import annotations

import asyncio

import pytest
import torch
from comfy_harness import tiny_sd15_model
from comfy_sampling_helpers import ksample, stock_sampling_model

pytestmark = pytest.mark.comfyui

PREDICTIONS = ["epsilon", "sol_v", "lune_flow"]


@pytest.fixture(scope="module")
def model(comfy):
    return tiny_sd15_model(seed=0)


@pytest.fixture(scope="module")
def node(comfy):
    from solune.nodes.prediction_type import SolunePredictionType

    return SolunePredictionType


def patch(node, model, prediction, shift=2.0, zsnr=False):
    return node.execute(model=model, prediction=prediction, shift=shift, zero_terminal_snr=zsnr).result[0]


def test_entrypoint_lists_the_node_with_tooltips_and_description(comfy):
    from comfy_api.latest import ComfyExtension

    import solune

    ext = asyncio.run(solune.comfy_entrypoint())
    assert isinstance(ext, ComfyExtension)
    nodes = asyncio.run(ext.get_node_list())
    assert "SolunePredictionType" in [n.define_schema().node_id for n in nodes]
    for n in nodes:
        schema = n.define_schema()
        assert schema.node_id.startswith("Solune")
        assert schema.description
        for inp in schema.inputs:
            assert inp.tooltip, f"{schema.node_id}.{inp.id} has no tooltip"


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_patch_returns_a_clone_and_leaves_the_input_model_untouched(node, model, prediction):
    before = model.get_model_object("model_sampling")
    patched = patch(node, model, prediction)
    assert patched is not model
    assert model.get_model_object("model_sampling") is before
    ms = patched.get_model_object("model_sampling")
    assert ms.prediction == prediction


def test_comfyui_isinstance_checks_see_the_right_prediction_class(node, model):
    import comfy.model_sampling as cms

    assert isinstance(patch(node, model, "lune_flow").get_model_object("model_sampling"), cms.CONST)
    assert isinstance(patch(node, model, "sol_v").get_model_object("model_sampling"), cms.V_PREDICTION)
    eps = patch(node, model, "epsilon").get_model_object("model_sampling")
    assert isinstance(eps, cms.EPS) and not isinstance(eps, cms.V_PREDICTION) and not isinstance(eps, cms.CONST)


@pytest.mark.parametrize(
    "prediction,zsnr", [("epsilon", False), ("sol_v", False), ("sol_v", True), ("lune_flow", False)]
)
def test_model_sampling_matches_comfyuis_own_object(node, model, prediction, zsnr):
    ours = patch(node, model, prediction, shift=2.5, zsnr=zsnr).get_model_object("model_sampling")
    stock = stock_sampling_model(model, prediction, shift=2.5, zsnr=zsnr).get_model_object("model_sampling")
    torch.testing.assert_close(ours.sigmas, stock.sigmas, rtol=0, atol=1e-6 * float(stock.sigmas.max()))
    assert float(ours.sigma_min) == pytest.approx(float(stock.sigma_min), rel=1e-6)
    assert float(ours.sigma_max) == pytest.approx(float(stock.sigma_max), rel=1e-6)
    sig = stock.sigmas[torch.tensor([0, 3, 250, 600, 998])]
    torch.testing.assert_close(ours.timestep(sig).float(), stock.timestep(sig).float(), rtol=1e-6, atol=1e-6)
    ts = torch.tensor([0.0, 10.5, 500.0, 999.0])
    torch.testing.assert_close(ours.sigma(ts), stock.sigma(ts), rtol=1e-6, atol=0)
    for p in (0.0, 0.1, 0.5, 0.9, 1.0):
        assert ours.percent_to_sigma(p) == pytest.approx(float(stock.percent_to_sigma(p)), rel=1e-6)
    g = torch.Generator().manual_seed(3)
    x, out = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)
    s = sig[[1, 3]]
    torch.testing.assert_close(
        ours.calculate_denoised(s, out, x), stock.calculate_denoised(s, out, x), rtol=0, atol=1e-6
    )
    torch.testing.assert_close(ours.calculate_input(s, x), stock.calculate_input(s, x), rtol=0, atol=1e-6)
    torch.testing.assert_close(
        ours.noise_scaling(s[0], out, x, max_denoise=True),
        stock.noise_scaling(s[0], out, x, max_denoise=True),
        rtol=0,
        atol=1e-6,
    )
    torch.testing.assert_close(
        ours.inverse_noise_scaling(s[0], x), stock.inverse_noise_scaling(s[0], x), rtol=0, atol=1e-6
    )


@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("sampler", ["euler", "dpmpp_2m", "euler_ancestral", "uni_pc"])
@pytest.mark.parametrize("denoise", [1.0, 0.5])
def test_sampling_equals_the_stock_nodes(node, model, prediction, sampler, denoise):
    g = torch.Generator().manual_seed(7)
    latent = torch.randn(1, 4, 8, 8, generator=g) * (0.0 if denoise == 1.0 else 1.0)
    ours = ksample(patch(node, model, prediction, shift=2.0), latent, sampler=sampler, denoise=denoise)
    stock = ksample(stock_sampling_model(model, prediction, shift=2.0), latent, sampler=sampler, denoise=denoise)
    assert torch.isfinite(ours).all()
    diff = (ours - stock).abs().max().item()
    assert diff <= 1e-5, f"max |ours - stock| = {diff}"
    # the run must actually have changed something: an identity would pass the equality above
    assert (ours - latent).abs().max().item() > 1e-2


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        (
            dict(prediction="v_prediction", shift=2.0, zero_terminal_snr=False),
            "prediction must be one of epsilon, sol_v, lune_flow; got 'v_prediction'",
        ),
        (dict(prediction="lune_flow", shift=0.0, zero_terminal_snr=False), "shift must be a number > 0"),
        (dict(prediction="lune_flow", shift=-2.0, zero_terminal_snr=False), "got -2.0"),
        (dict(prediction="lune_flow", shift=float("nan"), zero_terminal_snr=False), "got nan"),
        (dict(prediction="epsilon", shift=float("inf"), zero_terminal_snr=False), "got inf"),
    ],
)
def test_bad_input_is_refused_before_anything_is_patched(node, model, kwargs, needle):
    from comfy_harness import validation_message

    if kwargs["prediction"] in node.INPUT_TYPES()["required"]["prediction"][1]["options"]:
        msg = validation_message(node, kwargs)  # shift: the node's own check (the combo: see the HTTP test)
        assert isinstance(msg, str) and needle in msg
    before = dict(model.object_patches)
    with pytest.raises(ValueError, match="SolunePredictionType") as err:
        node.execute(model=model, **kwargs)
    assert needle in str(err.value)
    assert model.object_patches == before
