"""Tier 2, in process: SoluneExpertHandoff with two tiny random-weight SD1.5 UNets in a real
ComfyUI — one expert alone at either end of the switch, each expert's x0 equal to its direct
evaluation at the equivalent state of its own frame, per-expert patches, one loaded copy each."""

from __future__ import annotations

import pytest
import torch
from comfy_harness import tiny_sd15_model
from comfy_sampling_helpers import conds, ksample

pytestmark = pytest.mark.comfyui


@pytest.fixture(scope="module")
def unets(comfy):
    return tiny_sd15_model(seed=0), tiny_sd15_model(seed=1)


def patched(model, prediction):
    from solune.nodes.prediction_type import SolunePredictionType

    return SolunePredictionType.execute(model=model, prediction=prediction, shift=2.0, zero_terminal_snr=False).result[
        0
    ]


def experts(unets, structure="sol_v", detail="lune_flow"):
    return patched(unets[0], structure), patched(unets[1], detail)


def handoff(structure, detail, switch, blend_width=0.0):
    from solune.nodes.expert_handoff import SoluneExpertHandoff

    return SoluneExpertHandoff.execute(
        structure_model=structure, detail_model=detail, switch=switch, blend_width=blend_width
    ).result[0]


def rel_diff(a, b):
    return (a - b).abs().max().item() / max(1.0, b.abs().max().item())


@pytest.mark.parametrize("prediction", ["sol_v", "lune_flow"])
def test_same_type_switch_at_start_is_the_detail_model_alone_and_at_end_the_structure_model_alone(unets, prediction):
    structure, detail = experts(unets, prediction, prediction)
    latent = torch.zeros(1, 4, 8, 8)
    alone_s, alone_d = ksample(structure, latent, steps=4), ksample(detail, latent, steps=4)
    assert rel_diff(alone_s, alone_d) > 1e-2
    assert rel_diff(ksample(handoff(structure, detail, 0.0), latent, steps=4), alone_d) <= 1e-5
    assert rel_diff(ksample(handoff(structure, detail, 1.0), latent, steps=4), alone_s) <= 1e-5


def equivalent_state(x, sigma, src, dst):
    """Written out: DDPM x = x0 + σε ↔ flow x = (1 − t)x0 + tε with t = σ/(1 + σ)."""
    if src == dst:
        return x, sigma
    if src == "ddpm":
        return x / (1 + sigma), sigma / (1 + sigma)
    return x / (1 - sigma), sigma / (1 - sigma)


@pytest.mark.parametrize(
    "structure_type,detail_type", [("sol_v", "lune_flow"), ("lune_flow", "sol_v"), ("sol_v", "sol_v")]
)
@pytest.mark.parametrize("who", ["structure", "detail"])
def test_expert_through_the_handoff_returns_its_own_x0_at_the_equivalent_state(unets, structure_type, detail_type, who):
    import comfy.model_management

    from solune.nodes import comfy_internals

    structure, detail = experts(unets, structure_type, detail_type)
    h = handoff(structure, detail, 0.0 if who == "detail" else 1.0)
    comfy.model_management.load_models_gpu([h, detail])
    run_frame = structure.get_model_object("model_sampling").frame
    expert = detail if who == "detail" else structure
    frame = expert.get_model_object("model_sampling").frame
    g = torch.Generator().manual_seed(3)
    ctx = conds()[0][0][0]
    wrappers = {"wrappers": comfy_internals.static_transformer_options(h)["wrappers"]}  # as sampling merges them
    run_sigmas = [0.9, 0.5, 0.1] if run_frame == "flow" else [14.0, 2.0, 0.3]
    for s in run_sigmas:
        x = torch.randn(1, 4, 8, 8, generator=g) * 2
        sigma = torch.tensor([s])
        through = h.model.apply_model(x, sigma, c_crossattn=ctx, transformer_options=dict(wrappers))
        x_e, sigma_e = equivalent_state(x, sigma, run_frame, frame)
        direct = expert.model.apply_model(x_e, sigma_e, c_crossattn=ctx, transformer_options={})
        assert rel_diff(through, direct) <= 1e-5
        assert direct.abs().max() > 1e-3


def test_mixed_types_handoff_samples_with_stock_and_solune_samplers(unets):
    import comfy.sample
    import comfy.samplers

    from solune.nodes.samplers import SoluneSamplerSolDDPM

    structure, detail = experts(unets)
    h = handoff(structure, detail, 0.5)
    latent = torch.zeros(1, 4, 8, 8)
    out = ksample(h, latent, steps=4, sampler="dpmpp_2m")
    assert torch.isfinite(out).all()
    assert rel_diff(out, ksample(structure, latent, steps=4, sampler="dpmpp_2m")) > 1e-3
    pos, neg = conds()
    sigmas = comfy.samplers.calculate_sigmas(h.get_model_object("model_sampling"), "simple", 4)
    ours = comfy.sample.sample_custom(
        h,
        comfy.sample.prepare_noise(latent, 1),
        4.0,
        SoluneSamplerSolDDPM.execute(eta=1.0).result[0],
        sigmas,
        pos,
        neg,
        latent,
        disable_pbar=True,
        seed=1,
    )
    assert torch.isfinite(ours).all()


def recorder(patcher, calls, name):
    """A clone of `patcher` whose network calls (DIFFUSION_MODEL wrapper) and post-CFG calls are recorded."""
    import comfy.model_management
    import comfy.patcher_extension

    out = patcher.clone()

    def diffusion_wrapper(executor, *args, **kwargs):
        loaded = [lm.model.model for lm in comfy.model_management.current_loaded_models if lm.model is not None]
        calls.append(
            (name, "net", float(args[5]["sigmas"][0]), loaded)
        )  # (x, t, context, y, control, transformer_options)
        return executor(*args, **kwargs)

    def post_cfg(args):
        calls.append((name, "post_cfg", float(args["sigma"][0]), args["model"]))
        return args["denoised"]

    out.add_wrapper_with_key(
        comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "solune_test_recorder", diffusion_wrapper
    )
    out.set_model_sampler_post_cfg_function(post_cfg)
    return out


def test_each_expert_keeps_its_own_wrappers_and_post_cfg_functions_in_its_own_frame(unets):
    structure, detail = experts(unets)
    calls = []
    s_rec, d_rec = recorder(structure, calls, "structure"), recorder(detail, calls, "detail")
    h = handoff(s_rec, d_rec, 0.5)
    sigma_switch = structure.get_model_object("model_sampling").percent_to_sigma(0.5)
    ksample(h, torch.zeros(1, 4, 8, 8), steps=6, scheduler="simple")
    by = lambda who, what: [c for c in calls if c[0] == who and c[1] == what]
    assert by("structure", "net") and by("detail", "net")
    assert all(c[2] > sigma_switch for c in by("structure", "net") + by("structure", "post_cfg"))
    flow_switch = sigma_switch / (1 + sigma_switch)
    assert all(c[2] <= flow_switch + 1e-6 for c in by("detail", "net") + by("detail", "post_cfg"))
    assert len(by("structure", "post_cfg")) + len(by("detail", "post_cfg")) == 6
    assert all(c[3] is detail.model for c in by("detail", "post_cfg"))


def test_experts_are_loaded_once_by_model_management_without_copies(unets):
    structure, detail = experts(unets)
    calls = []
    h = handoff(structure, recorder(detail, calls, "detail"), 0.3)
    assert h.model is structure.model  # the handoff shares the structure expert's weights
    ksample(h, torch.zeros(1, 4, 8, 8), steps=4)
    nets = [c for c in calls if c[1] == "net"]
    assert nets
    for *_, loaded in nets:
        assert sum(m is detail.model for m in loaded) == 1
        assert sum(m is structure.model for m in loaded) == 1


def test_patches_on_the_detail_expert_apply_through_the_handoff(unets):
    structure, detail = experts(unets, "sol_v", "sol_v")
    lora_like = detail.clone()
    key = "diffusion_model.out.2.bias"
    lora_like.add_patches({key: (torch.full((4,), 0.05),)}, 1.0)
    latent = torch.zeros(1, 4, 8, 8)
    through = ksample(handoff(structure, lora_like, 0.0), latent, steps=3)
    assert rel_diff(through, ksample(lora_like, latent, steps=3)) <= 1e-5
    assert rel_diff(through, ksample(detail, latent, steps=3)) > 1e-4


def test_crossfade_runs_both_experts_inside_the_window_only(unets):
    structure, detail = experts(unets)
    calls = []
    h = handoff(recorder(structure, calls, "structure"), recorder(detail, calls, "detail"), 0.5, blend_width=0.4)
    ms = structure.get_model_object("model_sampling")
    hi, lo = ms.percent_to_sigma(0.3), ms.percent_to_sigma(0.7)
    out = ksample(h, torch.zeros(1, 4, 8, 8), steps=6, scheduler="simple")
    assert torch.isfinite(out).all()
    s_sig = [c[2] for c in calls if c[0] == "structure" and c[1] == "net"]
    d_sig = [c[2] / (1 - c[2]) for c in calls if c[0] == "detail" and c[1] == "net"]  # back to the run's DDPM σ
    assert all(s > lo for s in s_sig) and all(s <= hi * (1 + 1e-5) for s in d_sig)
    assert set(round(s, 3) for s in s_sig) & set(round(s, 3) for s in d_sig)  # some σ saw both


@pytest.mark.parametrize(
    "fmt,needle", [("SDXL", "detail_model is SDXL (4 channels)"), ("Flux", "detail_model is Flux (16 channels)")]
)
def test_experts_with_different_latent_formats_are_refused(unets, fmt, needle):
    import comfy.latent_formats

    from solune.nodes.expert_handoff import SoluneExpertHandoff

    structure, detail = experts(unets)
    other = detail.clone()
    other.add_object_patch("latent_format", getattr(comfy.latent_formats, fmt)())
    before = dict(structure.object_patches), dict(structure.model_options)
    with pytest.raises(ValueError) as err:
        SoluneExpertHandoff.execute(structure_model=structure, detail_model=other, switch=0.5)
    assert (
        needle in str(err.value)
        and "structure_model is SD15" in str(err.value)
        and "connect two SD1.5 UNets" in str(err.value)
    )
    assert (dict(structure.object_patches), dict(structure.model_options)) == before


def test_one_model_as_both_experts_is_refused(unets):
    from solune.nodes.expert_handoff import SoluneExpertHandoff

    structure, _ = experts(unets)
    with pytest.raises(ValueError, match="same loaded model"):
        SoluneExpertHandoff.execute(structure_model=structure, detail_model=patched(unets[0], "lune_flow"), switch=0.5)


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        (dict(switch=1.2), "switch must be a number in [0, 1]; got 1.2"),
        (dict(switch=-0.5), "switch must be a number in [0, 1]; got -0.5"),
        (dict(switch=0.5, blend_width=3.0), "blend_width must be a number in [0, 1]; got 3.0"),
    ],
)
def test_out_of_range_switch_is_refused_before_anything_is_built(unets, kwargs, needle):
    from comfy_harness import validation_message

    from solune.nodes.expert_handoff import SoluneExpertHandoff

    structure, detail = experts(unets)
    msg = validation_message(SoluneExpertHandoff, kwargs)  # blend_width: ComfyUI's own range check
    assert isinstance(msg, str) and (needle in msg or "Value 3.0 bigger than max of 1.0: blend_width" == msg)
    with pytest.raises(ValueError) as err:
        SoluneExpertHandoff.execute(structure_model=structure, detail_model=detail, **kwargs)
    assert needle in str(err.value) and "SoluneExpertHandoff" in str(err.value)
    assert structure.additional_models == {} and not structure.wrappers.get("apply_model")


def test_apply_model_wrappers_follow_their_expert_and_later_ones_reach_both(unets):
    import comfy.patcher_extension

    structure, detail = experts(unets)
    seen = []

    def tagging(tag):
        def wrapper(executor, x, t, *args, **kwargs):
            seen.append((tag, executor.class_obj))
            return executor(x, t, *args, **kwargs)

        return wrapper

    APPLY = comfy.patcher_extension.WrappersMP.APPLY_MODEL
    s_tag, d_tag = structure.clone(), detail.clone()
    s_tag.add_wrapper_with_key(APPLY, "solune_test", tagging("structure_own"))
    d_tag.add_wrapper_with_key(APPLY, "solune_test", tagging("detail_own"))
    h = handoff(s_tag, d_tag, 0.5).clone()
    h.add_wrapper_with_key(APPLY, "solune_test_later", tagging("later"))
    ksample(h, torch.zeros(1, 4, 8, 8), steps=4, scheduler="simple")
    own = {(tag, base) for tag, base in seen if tag != "later"}
    assert own == {("structure_own", structure.model), ("detail_own", detail.model)}
    assert {base for tag, base in seen if tag == "later"} == {structure.model, detail.model}


def test_handoffs_chain_and_load_every_expert(unets):
    import comfy.model_management

    third = patched(tiny_sd15_model(seed=2), "sol_v")
    first, second = experts(unets, "sol_v", "sol_v")
    inner = handoff(first, second, 0.0)  # = second alone
    outer = handoff(inner, third, 1.0)  # = inner
    latent = torch.zeros(1, 4, 8, 8)
    assert rel_diff(ksample(outer, latent, steps=3), ksample(second, latent, steps=3)) <= 1e-5
    loaded = [lm.model.model for lm in comfy.model_management.current_loaded_models if lm.model is not None]
    assert all(sum(m is e.model for m in loaded) == 1 for e in (first, second, third))
    outer_mid = handoff(inner, third, 0.5)
    assert rel_diff(ksample(outer_mid, latent, steps=3), ksample(second, latent, steps=3)) > 1e-4


def test_a_clone_of_the_handoff_shares_its_routing_and_samples_the_same(unets):
    from solune.nodes import comfy_internals

    structure, detail = experts(unets)
    structure = structure.clone()
    structure.set_model_sampler_post_cfg_function(lambda args: args["denoised"])
    out = handoff(structure, detail, 0.5)
    clone = out.clone()
    hook = out.model_options["sampler_post_cfg_function"][0].__self__
    assert clone.model_options["sampler_post_cfg_function"][0].__self__ is hook
    assert comfy_internals.own_apply_model_wrappers(clone)[0].__self__ is hook
    latent = torch.zeros(1, 4, 8, 8)
    assert torch.equal(ksample(clone, latent, steps=4), ksample(out, latent, steps=4))


def foreign_wrapper(calls):
    """Another pack's APPLY_MODEL wrapper whose effect depends on the frame it runs in (it adds a
    multiple of the timestep it is given), recording the BaseModel it wraps."""

    def wrapper(executor, x, t, *args, **kwargs):
        calls.append(executor.class_obj)
        return executor(x, t, *args, **kwargs) + 0.05 * t.view(-1, *([1] * (x.dim() - 1)))

    return wrapper


@pytest.mark.parametrize("where", ["patcher", "transformer_options"])
def test_a_foreign_apply_model_wrapper_added_later_runs_inside_the_routing_for_either_expert(unets, where):
    """Another pack's keyed APPLY_MODEL wrapper on the handoff's output (on the patcher, or in its
    transformer_options, whose order against the patcher's ComfyUI changed: PR #10362) runs for each
    expert in its own frame, exactly as when each expert carries it itself."""
    import comfy.patcher_extension

    from solune.nodes import comfy_internals

    APPLY = comfy.patcher_extension.WrappersMP.APPLY_MODEL
    structure, detail = experts(unets)
    latent = torch.zeros(1, 4, 8, 8)
    later_calls, own_calls = [], []
    later = handoff(structure, detail, 0.5).clone()
    if where == "patcher":
        later.add_wrapper_with_key(APPLY, "other_pack", foreign_wrapper(later_calls))
    else:
        comfy.patcher_extension.add_wrapper_with_key(
            APPLY, "other_pack", foreign_wrapper(later_calls), later.model_options, is_model_options=True
        )
    order = comfy_internals.own_apply_model_wrappers(later)
    assert [getattr(w, "__name__", "") for w in order] == ["apply_model", "wrapper"]  # the routing first
    s_own, d_own = structure.clone(), detail.clone()
    s_own.add_wrapper_with_key(APPLY, "other_pack", foreign_wrapper(own_calls))
    d_own.add_wrapper_with_key(APPLY, "other_pack", foreign_wrapper(own_calls))
    got = ksample(later, latent, steps=4, scheduler="simple")
    expected = ksample(handoff(s_own, d_own, 0.5), latent, steps=4, scheduler="simple")
    plain = ksample(handoff(structure, detail, 0.5), latent, steps=4, scheduler="simple")
    assert set(later_calls) == {structure.model, detail.model} == set(own_calls)
    assert len(later_calls) == len(own_calls)
    assert rel_diff(got, expected) <= 1e-6
    assert rel_diff(got, plain) > 1e-3  # the wrapper does change the result


def test_the_wrapper_order_of_the_installed_comfyui_is_probed_and_the_routing_goes_first(comfy):
    """0.3.64 calls a patcher's keyed wrappers before transformer_options' ones, 0.33.0 after them;
    the probe reads ComfyUI's own merge and the routing is registered on the side that runs first."""
    import comfy.patcher_extension

    from solune.nodes import comfy_internals

    first = comfy_internals.patcher_wrappers_run_first()
    to = {"wrappers": {"t": {"options_key": [1]}}}
    comfy.patcher_extension.merge_nested_dicts(to["wrappers"], {"t": {"patcher_key": [2]}}, copy_dict1=False)
    assert list(to["wrappers"]["t"]) == (["patcher_key", "options_key"] if first else ["options_key", "patcher_key"])


def attention_override(scale):
    """An `optimized_attention_override` (ComfyUI calls it with the attention function and its
    arguments) that scales every attention output: it changes what the UNet returns."""

    def override(func, *args, **kwargs):
        return func(*args, **kwargs) * scale

    return override


def test_every_model_level_transformer_option_goes_to_its_own_expert(unets):
    """Entries an expert keeps in its transformer_options (any key: `optimized_attention_override` and
    `rope_options` as ComfyUI 0.33's ModelPatcher setters write them, a pack's holder) reach that
    expert only; options added to the handoff's output later, and the run's per-step ones, reach both."""
    import comfy.patcher_extension

    structure, detail = experts(unets, "sol_v", "sol_v")
    seen = []
    keys = ("optimized_attention_override", "rope_options", "holder", "later", "sigmas")

    def looking(tag):
        def wrapper(executor, *args, **kwargs):
            to = args[5]  # (x, t, context, y, control, transformer_options)
            seen.append((tag, {k: to.get(k) for k in keys}))
            return executor(*args, **kwargs)

        return wrapper

    DIFFUSION = comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL
    s_opts, d_opts = structure.clone(), detail.clone()
    s_opts.add_wrapper_with_key(DIFFUSION, "solune_test", looking("structure"))
    d_opts.add_wrapper_with_key(DIFFUSION, "solune_test", looking("detail"))
    s_override = attention_override(1.5)
    s_opts.model_options["transformer_options"]["optimized_attention_override"] = s_override
    s_opts.model_options["transformer_options"]["holder"] = "structure_cache"
    if hasattr(d_opts, "set_model_rope_options"):  # ComfyUI 0.33's own setter
        d_opts.set_model_rope_options(2.0, 0.0, 2.0, 0.0, 1.0, 0.0)
    else:
        d_opts.model_options["transformer_options"]["rope_options"] = {"scale_x": 2.0}
    h = handoff(s_opts, d_opts, 0.5).clone()
    h.model_options["transformer_options"]["later"] = "for_both"
    ksample(h, torch.zeros(1, 4, 8, 8), steps=4, scheduler="simple")
    s_seen = [v for tag, v in seen if tag == "structure"]
    d_seen = [v for tag, v in seen if tag == "detail"]
    assert s_seen and d_seen
    for v in s_seen:
        assert v["optimized_attention_override"] is s_override and v["holder"] == "structure_cache"
        assert v["rope_options"] is None and v["later"] == "for_both"
    for v in d_seen:
        assert v["optimized_attention_override"] is None and v["holder"] is None and v["later"] == "for_both"
        assert v["rope_options"]["scale_x"] == 2.0 and v["sigmas"] is not None

    # and in effect: the structure expert's attention override changes the structure expert only
    latent = torch.zeros(1, 4, 8, 8)
    s_over = structure.clone()
    s_over.model_options["transformer_options"]["optimized_attention_override"] = attention_override(1.5)
    assert rel_diff(ksample(s_over, latent, steps=3), ksample(structure, latent, steps=3)) > 1e-3
    assert rel_diff(ksample(handoff(s_over, detail, 0.0), latent, steps=3), ksample(detail, latent, steps=3)) <= 1e-6
    d_over = detail.clone()
    d_over.model_options["transformer_options"]["optimized_attention_override"] = attention_override(1.5)
    assert rel_diff(ksample(handoff(structure, d_over, 0.0), latent, steps=3), ksample(d_over, latent, steps=3)) <= 1e-6
