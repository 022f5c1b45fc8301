"""Shipped workflows: every example is a loadable UI file with a thumbnail, uses only stock and
Solune nodes, starts from the files users own (one checkpoint, with download links the frontend
offers), has an up-to-date API twin, and (tier 2) runs to completion on a real ComfyUI server
through `python -m solune.run`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from comfy_harness import CHECKPOINT

from solune.workflow import twins
from solune.workflow.convert import subgraph_definitions
from solune.workflow.overrides import targets

EXAMPLES = twins.ui_files()
FRONTEND_ONLY = {"Reroute", "PrimitiveNode", "Note", "MarkdownNote"}
LOADERS = {
    "UNETLoader": "unet_name",
    "CLIPLoader": "clip_name",
    "VAELoader": "vae_name",
    "LoadImage": "image",
    "CheckpointLoaderSimple": "ckpt_name",
    "ControlNetLoader": "control_net_name",
    "ModelPatchLoader": "name",
}


SNAPSHOTS = twins.snapshots()  # {ComfyUI version: /object_info snapshot}, oldest first

# The tiled, upscale and retouch examples start from one checkpoint; Sol and Lune are published as
# bare UNets, so their examples keep the UNet loaders.
CHECKPOINT_EXAMPLES = [p for p in EXAMPLES if p.stem.startswith(("tiled_", "upscale_", "refine_"))]
UNET_EXAMPLES = [p for p in EXAMPLES if p.stem.startswith(("sol_", "lune_"))]
# The 2026 families are published as separate files (model, text encoder, VAE, model patches): their
# examples load each with its own titled loader.
FAMILY_EXAMPLES = [p for p in EXAMPLES if p.stem.startswith(("qwen_image_", "flux2_"))]
# The runner test needs a tiny file for every model an example loads. A 2026 family example cannot have
# them: Qwen-Image's text encoder (Qwen2.5-VL 7B) has no small form ComfyUI loads, and ModelPatchLoader
# always builds the DiffSynth ControlNet at 60 blocks x 3072 in float32 (1.13 G parameters, 4.5 GB,
# whatever the file's dtype). Their graphs run in process instead, node by node with the tests' tiny
# models (tests/test_tiled_model_patches_comfy.py, `FAMILY_EXAMPLE_PATHS` below names the test per example).
RUNNER_EXAMPLES = [p for p in EXAMPLES if p not in FAMILY_EXAMPLES]
FAMILY_EXAMPLE_PATHS = {
    "qwen_image_retouch_diffsynth_inpaint": (
        "test_the_qwen_image_retouch_example_path_runs_diffsynth_under_the_tiled_hook",
        ["VAEEncode", "QwenImageDiffsynthControlnet", "SoluneTiledImg2Img", "KSampler", "VAEDecode"],
    ),
}
SEPARATE_LOADERS = {"UNETLoader", "CLIPLoader", "VAELoader"}
# the folder under models/ each loader reads, as the frontend's `models` metadata names it
MODEL_DIRECTORIES = {
    "CheckpointLoaderSimple": "checkpoints",
    "ControlNetLoader": "controlnet",
    "ModelPatchLoader": "model_patches",
    "UNETLoader": "diffusion_models",
    "CLIPLoader": "text_encoders",
    "VAELoader": "vae",
}
# what the frontend's missing-models dialog downloads (MissingModelsWarning in frontend 1.27 / 1.49)
DOWNLOAD_SOURCES = ("https://huggingface.co/", "https://civitai.com/")
DOWNLOAD_SUFFIXES = (".safetensors", ".sft")


def snapshot() -> dict:
    """The oldest tested version's snapshot (every snapshot converts the examples alike: see below)."""
    return next(iter(SNAPSHOTS.values()))


def converted(path: Path) -> dict:
    return twins.ui_to_api(json.loads(path.read_text()), snapshot())


def test_the_examples_cover_every_feature():
    types = twins.node_types()
    for node in (
        "SolunePredictionType",
        "SoluneTiledImg2Img",
        "SoluneTiledSampler",
        "SoluneExpertHandoff",
        "SoluneRefine",
        "SoluneStitch",
    ):
        assert node in types, f"no example workflow uses {node}"
    # tiled img2img: quadtree + blend; strength + a painted mask; a 2x upscale with tile-by-tile evaluation
    tiled = [twins.ui_to_api(json.loads(p.read_text()), snapshot()) for p in EXAMPLES]
    # the tile map: every tiled example previews the hook node's own tile_map output (output 1)
    for api in tiled:
        hooks = {i for i, n in api.items() if n["class_type"] in ("SoluneTiledImg2Img", "SoluneTiledSampler")}
        if hooks:
            previews = [n for n in api.values() if n["class_type"] == "PreviewImage"]
            assert any(tuple(n["inputs"]["images"]) in {(h, 1) for h in hooks} for n in previews)
    settings = [n["inputs"] for api in tiled for n in api.values() if n["class_type"].startswith("SoluneTiled")]
    assert any(s["layout"] == "quadtree" and s["mode"] == "blend" for s in settings)
    assert any(s["mode"] == "strength" and s["scale_mode"] == "mask" and "denoise_mask" in s for s in settings)
    assert any(s["tiled_model"] is True for s in settings)
    # a soft-mask retouch: LoadImage's mask grown and blurred by stock nodes, per-pixel scale
    assert any(s["scale_mode"] == "pixel" and "denoise_mask" in s for s in settings)
    assert {"GrowMask", "ImageBlur", "ImageToMask"} <= types
    # ControlNet Tile refine: a tile ControlNet under tiled evaluation
    assert "ControlNetApplyAdvanced" in types
    # a 2026-style workflow: the tiled nodes packed in a subgraph, its settings promoted to the subgraph node
    packed = [p for p in EXAMPLES if (json.loads(p.read_text()).get("definitions") or {}).get("subgraphs")]
    assert packed, "no example workflow uses a subgraph"
    assert any(":" in i and n["class_type"] == "SoluneTiledSampler" for p in packed for i, n in converted(p).items())


def producer(api: dict, node_id: str, name: str) -> tuple[str, int]:
    """(node id, output index) feeding input `name` of node `node_id` of an API prompt."""
    source = api[node_id]["inputs"][name]
    assert isinstance(source, list), f"node {node_id}: {name} is a widget value, not a link"
    return str(source[0]), int(source[1])


# Examples whose VAE Solune Stitch cannot take (a video-style VAE: frame-axis latents), with why.
UNSTITCHED = {
    "qwen_image_retouch_diffsynth_inpaint": "Qwen-Image's VAE makes [B, C, 1, H, W] latents; Stitch takes image VAEs",
}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_a_hook_example_that_keeps_pixels_saves_through_solune_stitch(path):
    """Where a hook's scale can be 0 (a mask with min_denoise 0), the saved picture keeps those pixels only
    if it is stitched: SoluneStitch's image is the picture the latent was encoded from, its scale the hook's
    scale output, its samples the sampler's output; no VAEDecode in that example decodes the sampler's
    output."""
    api = converted(path)
    hooks = [i for i, n in api.items() if n["class_type"] == "SoluneTiledImg2Img"]
    keeping = [i for i in hooks if api[i]["inputs"]["min_denoise"] == 0 and "denoise_mask" in api[i]["inputs"]]
    stitches = [i for i, n in api.items() if n["class_type"] == "SoluneStitch"]
    if not keeping:
        return
    if path.stem in UNSTITCHED:  # the Note must say the saved picture is not the photo bit for bit
        notes = [n["widgets_values"][0] for n in twins.all_nodes(json.loads(path.read_text())) if n["type"] == "Note"]
        assert not stitches and any("not bit for bit" in text and "image VAEs only" in text for text in notes)
        return
    assert len(stitches) == len(keeping), f"{path.name}: one SoluneStitch per hook that keeps pixels"
    for hook in keeping:
        stitch = next(s for s in stitches if producer(api, s, "scale") == (hook, 2))
        sampler, _ = producer(api, stitch, "samples")
        assert api[sampler]["class_type"] == "KSampler" and producer(api, sampler, "model") == (hook, 0)
        # the picture the hook's latent was encoded from
        encode, _ = producer(api, hook, "latent")
        assert api[encode]["class_type"] == "VAEEncode" and producer(api, sampler, "latent_image") == (encode, 0)
        assert producer(api, stitch, "image") == producer(api, encode, "pixels")
        assert producer(api, stitch, "vae") == producer(api, encode, "vae")
        decodes = [i for i, n in api.items() if n["class_type"].startswith("VAEDecode")]
        assert all(producer(api, d, "samples") != (sampler, 0) for d in decodes), path.name
        saves = [i for i, n in api.items() if n["class_type"] == "SaveImage"]
        assert any(producer(api, i, "images") == (stitch, 0) for i in saves), f"{path.name}: stitched picture not saved"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_no_tile_setting_is_typed_twice_in_an_example(path):
    """The preview comes from the hook node: no example sets up a SoluneTileMap beside a tiled node."""
    types = [n["type"] for n in twins.all_nodes(json.loads(path.read_text()))]
    if "SoluneTiledImg2Img" in types or "SoluneTiledSampler" in types:
        assert "SoluneTileMap" not in types


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_is_a_ui_file_with_a_thumbnail(path):
    data = json.loads(path.read_text())
    assert isinstance(data["nodes"], list) and isinstance(data["links"], list)
    assert {"last_node_id", "last_link_id", "version"} <= set(data)
    thumb = path.with_suffix(".jpg")
    assert thumb.is_file(), f"{thumb.name} missing (ComfyUI's template browser shows it)"
    assert thumb.read_bytes()[:3] == b"\xff\xd8\xff", f"{thumb.name} is not a JPEG"
    ids = [n["id"] for n in data["nodes"]]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_uses_only_stock_and_solune_nodes_and_titles_its_model_files(path):
    workflow = json.loads(path.read_text())
    subgraphs = subgraph_definitions(workflow)
    for node in twins.all_nodes(workflow):
        for version, info in SNAPSHOTS.items():
            known = node["type"] in info or node["type"] in FRONTEND_ONLY or node["type"] in subgraphs
            assert known, f"{path.name}: node type {node['type']} unknown to ComfyUI {version}"
        if node["type"] in LOADERS:
            # a user changes a model or image name in one place: the titled loader
            assert node.get("title"), f"{path.name}: loader node {node['id']} ({node['type']}) has no title"


def notes(data: dict) -> str:
    return "\n".join(
        str(v) for n in twins.all_nodes(data) if n["type"] in ("Note", "MarkdownNote") for v in n["widgets_values"]
    )


@pytest.mark.parametrize("path", CHECKPOINT_EXAMPLES, ids=lambda p: p.stem)
def test_a_tiled_example_loads_one_checkpoint_and_its_note_tells_the_separate_files_way(path):
    data = json.loads(path.read_text())
    types = [n["type"] for n in twins.all_nodes(data)]
    assert types.count("CheckpointLoaderSimple") == 1, f"{path.name}: load one checkpoint (Load Checkpoint)"
    assert not SEPARATE_LOADERS & set(types), f"{path.name}: the separate-file loaders belong in its Note"
    text = notes(data)
    for loader in ("Load Diffusion Model", "Load CLIP", "Load VAE"):
        assert loader in text, f"{path.name}: its Note does not tell the separate-files variant ({loader})"


@pytest.mark.parametrize("path", UNET_EXAMPLES, ids=lambda p: p.stem)
def test_a_sol_or_lune_example_keeps_its_unet_loaders(path):
    types = {n["type"] for n in twins.all_nodes(json.loads(path.read_text()))}
    assert "UNETLoader" in types and "CheckpointLoaderSimple" not in types


@pytest.mark.parametrize("path", FAMILY_EXAMPLES, ids=lambda p: p.stem)
def test_a_2026_family_example_loads_its_separate_files_each_with_its_download(path):
    data = json.loads(path.read_text())
    loaders = [n for n in twins.all_nodes(data) if n["type"] in MODEL_DIRECTORIES]
    assert SEPARATE_LOADERS <= {n["type"] for n in loaders}, f"{path.name}: model, text encoder and VAE loaders"
    assert all(n.get("properties", {}).get("models") for n in loaders), f"{path.name}: a loader names no download"


@pytest.mark.parametrize("path", FAMILY_EXAMPLES, ids=lambda p: p.stem)
def test_a_2026_family_example_is_the_graph_its_in_process_test_runs(path):
    """The runner cannot run it (see RUNNER_EXAMPLES): its test runs these nodes in this order, with
    tiled_model on; the example must be that graph."""
    test_name, chain = FAMILY_EXAMPLE_PATHS[path.stem]
    source = (Path(__file__).parent / "test_tiled_model_patches_comfy.py").read_text()
    assert f"def {test_name}(" in source
    api = twins.ui_to_api(json.loads(path.read_text()), snapshot())
    by_type = {n["class_type"]: (i, n) for i, n in api.items()}
    assert set(chain) <= set(by_type), f"{path.name}: {sorted(by_type)}"
    for a, b in zip(chain, chain[1:]):  # each node feeds the next (directly or through the latent it encodes)
        node_id = by_type[a][0]
        assert any(isinstance(v, list) and v[0] == node_id for v in by_type[b][1]["inputs"].values()) or (
            a == "VAEEncode"
            and any(v[0] == node_id for v in by_type["SoluneTiledImg2Img"][1]["inputs"].values() if isinstance(v, list))
        ), f"{path.name}: {a} does not feed {b}"
    assert by_type["SoluneTiledImg2Img"][1]["inputs"]["tiled_model"] is True


@pytest.mark.parametrize("path", CHECKPOINT_EXAMPLES + FAMILY_EXAMPLES, ids=lambda p: p.stem)
def test_a_tiled_example_says_to_leave_the_samplers_denoise_at_one_and_does(path):
    """The strength is max_denoise; a user coming from Ultimate SD Upscale would lower the sampler's denoise."""
    data = json.loads(path.read_text())
    text = notes(data).lower()
    # by the id the prompt gives each node (`14:9` inside a subgraph)
    samplers = [t for t in targets(data) if t.class_type in ("KSampler", "SoluneTiledSampler", "SoluneRefine")]
    assert samplers, path.name
    assert "denoise at 1.0" in text and "`max_denoise` is your strength" in text, f"{path.name}: {text}"
    if any(t.class_type == "KSampler" for t in samplers):
        assert "leave ksampler denoise at 1.0" in text, path.name
    api = twins.ui_to_api(data, snapshot())
    for target in samplers:
        assert api[target.node_id]["inputs"]["denoise"] == 1.0, f"{path.name}: node {target.node_id}"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_public_model_file_an_example_names_carries_its_download(path):
    """properties.models ({name, url, directory}) is what the frontend's missing-models dialog offers: the
    file the widget selects, the models/ folder its loader reads, a URL the dialog will download."""
    for node in twins.all_nodes(json.loads(path.read_text())):
        if node["type"] not in MODEL_DIRECTORIES:
            continue
        models = node.get("properties", {}).get("models", [])
        if node["type"] in ("CheckpointLoaderSimple", "ControlNetLoader"):
            assert models, f"{path.name}: node {node['id']} ({node['type']}) names no download"
        for model in models:
            assert set(model) == {"name", "url", "directory"}, model
            assert model["name"] == node["widgets_values"][0], f"{path.name}: node {node['id']}"
            assert model["directory"] == MODEL_DIRECTORIES[node["type"]], f"{path.name}: node {node['id']}"
            assert model["url"].startswith(DOWNLOAD_SOURCES), model["url"]
            assert model["url"].split("?")[0].endswith("/" + model["name"]), model["url"]
            assert model["name"].endswith(DOWNLOAD_SUFFIXES), model["name"]


def test_the_download_check_can_fail(tmp_path):
    """A loader whose widget names another file than its metadata is caught."""
    src = CHECKPOINT_EXAMPLES[0]
    data = json.loads(src.read_text())
    loader = next(n for n in data["nodes"] if n["type"] == "CheckpointLoaderSimple")
    loader["widgets_values"] = ["my_model.safetensors"]
    (tmp_path / src.name).write_text(json.dumps(data))
    with pytest.raises(AssertionError):
        test_every_public_model_file_an_example_names_carries_its_download(tmp_path / src.name)
    del loader["properties"]["models"]
    (tmp_path / src.name).write_text(json.dumps(data))
    with pytest.raises(AssertionError):
        test_every_public_model_file_an_example_names_carries_its_download(tmp_path / src.name)


def test_every_snapshot_is_one_comfyui_versions_view_of_the_example_node_types():
    assert len(SNAPSHOTS) >= 2, f"snapshots of the tested ComfyUI versions expected; found {sorted(SNAPSHOTS)}"
    for version, info in SNAPSHOTS.items():
        assert twins.snapshot_path(version).name == f"{version}.json"
        assert set(info) == twins.node_types() - FRONTEND_ONLY, version


@pytest.mark.parametrize("version", list(SNAPSHOTS))
def test_api_twins_are_exactly_the_converters_output_on_every_version(version):
    """One set of twins serves every tested ComfyUI: each version's snapshot converts every example
    to exactly the shipped twin, though the versions describe their nodes differently."""
    assert twins.stale_twins(SNAPSHOTS[version]) == []
    shipped = {p.name for p in twins.API_DIR.glob("*.json")}
    assert shipped == {p.name for p in EXAMPLES}, "every UI example needs one API twin, and no orphans"


def test_snapshots_are_read_oldest_version_first_and_named_by_plain_versions(tmp_path):
    for version in ("0.10.0", "0.9.1", "0.33.0"):
        (tmp_path / f"{version}.json").write_text(json.dumps({"v": version}))
    assert list(twins.snapshots(tmp_path)) == ["0.9.1", "0.10.0", "0.33.0"]
    for bad in ("", "../0.3.64", ".hidden"):
        with pytest.raises(twins.RunnerError, match="ComfyUI version must be a plain version string"):
            twins.snapshot_path(bad)


def test_a_version_that_converts_an_example_differently_is_found():
    """The version-independence check can fail: a version whose KSampler lists its widgets in
    another order converts the KSampler examples to other inputs."""
    first, info = next(iter(SNAPSHOTS.items()))
    swapped = json.loads(json.dumps(info))
    order = swapped["KSampler"]["input_order"]["required"]
    i, j = order.index("steps"), order.index("cfg")
    order[i], order[j] = order[j], order[i]
    differ = twins.version_dependent_twins({first: info, "9.9.9": swapped})
    uses_ksampler = {p.name for p in EXAMPLES if "KSampler" in {n["type"] for n in json.loads(p.read_text())["nodes"]}}
    assert uses_ksampler and differ == {name: ["9.9.9"] for name in uses_ksampler}
    assert twins.version_dependent_twins(SNAPSHOTS) == {}


def test_a_changed_ui_file_makes_its_twin_stale(tmp_path):
    """The drift check can fail: edit one widget value and the twin no longer matches."""
    src = EXAMPLES[0]
    data = json.loads(src.read_text())
    node = next(
        n
        for n in data["nodes"]
        if n.get("widgets_values")
        and isinstance(n["widgets_values"], list)
        and any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in n["widgets_values"])
    )
    i = next(i for i, v in enumerate(node["widgets_values"]) if isinstance(v, (int, float)) and not isinstance(v, bool))
    node["widgets_values"][i] = node["widgets_values"][i] + 1
    (tmp_path / src.name).write_text(json.dumps(data))
    assert twins.stale_twins(snapshot(), ui_dir=tmp_path) == [src.name]


# ---------------------------------------------------------------- tier 2
def model_overrides(path: Path) -> list[str]:
    """--set arguments that point every loader of the example at the tests' tiny files."""
    sets, unets = [], 0
    # every node by the id the prompt gives it (`14:9` inside a subgraph), in id order
    nodes = sorted(targets(json.loads(path.read_text())), key=lambda t: [int(p) for p in t.node_id.split(":")])
    for node in nodes:
        kind, node_id = node.class_type, node.node_id
        if kind == "CheckpointLoaderSimple":
            sets.append(f"{node_id}.ckpt_name={CHECKPOINT}")
        elif kind == "UNETLoader":
            sets.append(f"{node_id}.unet_name=tiny_sd15_{min(unets, 1)}.safetensors")
            unets += 1
        elif kind == "CLIPLoader":
            sets.append(f"{node_id}.clip_name=tiny_clip_l.safetensors")
        elif kind == "VAELoader":
            sets.append(f"{node_id}.vae_name=tiny_taesd.safetensors")
        elif kind == "ControlNetLoader":
            sets.append(f"{node_id}.control_net_name=tiny_sd15_controlnet.safetensors")
        elif kind == "LoadImage":
            sets.append(f"{node_id}.image=solune_example.png")
        elif kind == "EmptyLatentImage":  # the tiny UNet runs at 16×16 latents, not the example's size
            sets += [f"{node_id}.width=128", f"{node_id}.height=128"]
    return [a for s in sets for a in ("--set", s)]


@pytest.fixture(scope="module")
def server_with_image(comfy_server):
    from PIL import Image

    img = Image.new("RGBA", (96, 64))
    for y in range(64):
        for x in range(96):
            img.putpixel((x, y), (x * 2 % 256, y * 4 % 256, (x * y) % 256, 255 if x < 48 else 0))
    img.save(comfy_server.base / "input" / "solune_example.png")
    return comfy_server


def run_cli(server, *args, timeout=900):
    return subprocess.run(
        [sys.executable, "-m", "solune.run", *args, "--server", server.url, "--no-progress"],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.comfyui
def test_the_tests_checkpoint_loads_as_the_separate_files_do(comfy_server):
    """Load Checkpoint reads the tests' one-file checkpoint as the tiny SD1.5 UNet, CLIP-L and TAESD."""
    import comfy.sd
    import torch
    from comfy_harness import tiny_sd15_unet_state_dict

    model, clip, vae = comfy.sd.load_checkpoint_guess_config(
        str(comfy_server.base / "models" / "checkpoints" / CHECKPOINT)
    )[:3]
    assert type(model.model.model_config).__name__ == "SD15"
    unet = model.model.diffusion_model.state_dict()
    assert all(torch.equal(unet[k], v) for k, v in tiny_sd15_unet_state_dict(0).items())
    assert clip.encode_from_tokens(clip.tokenize("a photo")).shape == (1, 77, 768)
    assert type(vae.first_stage_model).__name__ == "TAESD"


@pytest.mark.comfyui
def test_the_running_comfyuis_snapshot_matches_it_and_converts_to_the_shipped_twins(comfy_server):
    version = comfy_server.get("/system_stats")["system"]["comfyui_version"]
    live = comfy_server.get("/object_info")
    refresh = f"record it with python -m solune.workflow.twins --server URL (a ComfyUI {version} server)"
    assert version in SNAPSHOTS, f"no /object_info snapshot for ComfyUI {version}: {refresh}"
    for name, info in SNAPSHOTS[version].items():
        assert twins.without_file_lists(name, live.get(name, {})) == info, f"object_info of {name} changed: {refresh}"
    # the twins are what the converter makes from this very server's /object_info
    assert twins.stale_twins(twins.snapshot_object_info(live)) == []


@pytest.mark.comfyui
def test_the_twins_tool_checks_a_live_server_with_every_snapshot(comfy_server):
    """`--server URL --check` reads the server's version and /object_info, writes nothing, and finds
    the twins fresh and alike on that server and every recorded version."""
    before = {p: p.read_bytes() for p in twins.API_DIR.rglob("*.json")}
    result = subprocess.run(
        [sys.executable, "-m", "solune.workflow.twins", "--server", comfy_server.url, "--check"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert {p: p.read_bytes() for p in twins.API_DIR.rglob("*.json")} == before


@pytest.mark.comfyui
@pytest.mark.parametrize("path", RUNNER_EXAMPLES, ids=lambda p: p.stem)
def test_example_runs_to_completion_through_the_runner(server_with_image, path, tmp_path):
    out = tmp_path / "out"
    result = run_cli(server_with_image, str(path), *model_overrides(path), "--out", str(out))
    assert result.returncode == 0, (
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}\nserver:\n{server_with_image.log_tail()}"
    )
    saved = [Path(line) for line in result.stdout.split("\n") if line.strip()]
    assert saved and all(p.is_file() and p.stat().st_size > 0 for p in saved), result.stdout


@pytest.mark.comfyui
def test_an_execution_error_exits_non_zero_with_the_nodes_message(server_with_image, tmp_path):
    path = next(p for p in EXAMPLES if any(n["type"] == "LoadImage" for n in json.loads(p.read_text())["nodes"]))
    load = next(n for n in json.loads(path.read_text())["nodes"] if n["type"] == "LoadImage")
    (server_with_image.base / "input" / "broken.png").write_bytes(b"not a png")
    args = model_overrides(path) + ["--set", f"{load['id']}.image=broken.png"]
    result = run_cli(server_with_image, str(path), *args, "--out", str(tmp_path))
    assert result.returncode in (3, 4), result.stderr
    assert "LoadImage" in result.stderr


@pytest.mark.comfyui
@pytest.mark.parametrize("name", ["tiled_img2img_strength_mask", "tiled_img2img_soft_mask_pixel"])
def test_a_mask_example_runs_on_a_picture_without_alpha(server_with_image, name, tmp_path):
    """LoadImage then hands over its 64×64 all-zero placeholder mask: used as it is, with a warning."""
    from PIL import Image

    picture = Image.new("RGB", (96, 64))
    picture.putdata([(x * 2, y * 3, (x + y) % 256) for y in range(64) for x in range(96)])
    picture.save(server_with_image.base / "input" / "solune_no_alpha.png")
    path = next(p for p in EXAMPLES if p.stem == name)
    load = next(n for n in json.loads(path.read_text())["nodes"] if n["type"] == "LoadImage")
    args = model_overrides(path) + ["--set", f"{load['id']}.image=solune_no_alpha.png"]
    before = len(server_with_image.log_path.read_text(errors="replace"))
    result = run_cli(server_with_image, str(path), *args, "--out", str(tmp_path))
    assert result.returncode == 0, f"stderr:\n{result.stderr}\nserver:\n{server_with_image.log_tail()}"
    log = server_with_image.log_path.read_text(errors="replace")[before:]
    assert "denoise_mask is all zero" in log and "64×64 px has another aspect ratio than the image (96×64 px)" in log
    # every pixel's scale is 0, and SoluneStitch hands the picture back: the saved PNG is the input, value for value
    prefix = next(n for n in json.loads(path.read_text())["nodes"] if n["type"] == "SaveImage")["widgets_values"][0]
    saved = [Path(line) for line in result.stdout.split("\n") if Path(prefix).name in Path(line).name]
    assert len(saved) == 1, result.stdout
    assert Image.open(saved[0]).convert("RGB").tobytes() == picture.tobytes()
