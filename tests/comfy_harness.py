"""Tier-2 harness: find a real ComfyUI, import it in process, build tiny random-weight models,
and run a headless ComfyUI server with Solune installed from this checkout.

ComfyUI is found through COMFYUI_PATH, or at ../../ when this checkout sits in
ComfyUI/custom_nodes/. Tests that need it skip with the reason when it is absent.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _looks_like_comfyui(path: Path) -> bool:
    return (
        (path / "main.py").is_file()
        and (path / "comfy" / "model_sampling.py").is_file()
        and (path / "nodes.py").is_file()
    )


def locate_comfyui() -> tuple[Path | None, str]:
    """(path, "") when a ComfyUI is found, else (None, why not)."""
    env = os.environ.get("COMFYUI_PATH")
    if env:
        path = Path(env).expanduser().resolve()
        if _looks_like_comfyui(path):
            return path, ""
        return None, f"COMFYUI_PATH={env} is not a ComfyUI folder (no main.py, nodes.py and comfy/model_sampling.py)"
    parent = REPO.parents[1]
    if _looks_like_comfyui(parent):
        return parent, ""
    return None, (
        "no ComfyUI found: set COMFYUI_PATH to a ComfyUI checkout (with its requirements installed in this "
        f"Python) or place this pack in ComfyUI/custom_nodes/ (looked at {parent})"
    )


_IMPORTED: dict = {}


def import_comfy():
    """Import ComfyUI in this process on the CPU; returns (module namespace dict, "") or (None, why)."""
    if "ok" in _IMPORTED:
        return _IMPORTED["ok"], ""
    if "why" in _IMPORTED:
        return None, _IMPORTED["why"]
    path, why = locate_comfyui()
    if path is None:
        _IMPORTED["why"] = why
        return None, why
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
    try:
        from comfy.cli_args import args

        args.cpu = True
        import comfy.model_management  # noqa: F401
        import comfy.model_patcher  # noqa: F401
        import comfy.sample  # noqa: F401
        import comfy.samplers  # noqa: F401
        import comfy.sd  # noqa: F401
        import comfy_api.latest  # noqa: F401
    except Exception as exc:  # report the real reason in the skip message
        why = f"ComfyUI at {path} could not be imported in this Python ({sys.executable}): {type(exc).__name__}: {exc}"
        _IMPORTED["why"] = why
        return None, why
    import comfy

    _IMPORTED["ok"] = comfy
    return comfy, ""


def validation_message(node_class, inputs: dict) -> str | bool:
    """What ComfyUI's prompt validation says about a V3 node's widget `inputs`, in process: the node's
    `validate_inputs` called with the inputs it declares (ComfyUI passes it only those, and shows its
    message under each of them), else ComfyUI's own min/max check of the inputs it does not declare
    (same text as execution.py's). True when both pass. Combo values are not emulated: ComfyUI checks
    V3 combos only from some version after 0.3.64; the nodes check them again when they run."""
    import inspect

    declared = inspect.signature(node_class.validate_inputs).parameters
    message = node_class.validate_inputs(**{k: v for k, v in inputs.items() if k in declared})
    if message is not True:
        return message
    specs = {**node_class.INPUT_TYPES().get("required", {}), **node_class.INPUT_TYPES().get("optional", {})}
    for name, value in inputs.items():
        extra = specs[name][1] if name not in declared and len(specs[name]) > 1 else {}
        if "min" in extra and value < extra["min"]:
            return f"Value {value} smaller than min of {extra['min']}: {name}"
        if "max" in extra and value > extra["max"]:
            return f"Value {value} bigger than max of {extra['max']}: {name}"
    return True


# ---------------------------------------------------------------- tiny models
def _fill_random(state_dict, seed: int, gain: float = 1.0):
    import torch

    gen = torch.Generator().manual_seed(seed)
    for key in sorted(state_dict):
        value = state_dict[key]
        if not value.is_floating_point():
            continue
        if key.endswith("bias"):
            value.zero_()
        elif "norm" in key and value.ndim == 1:
            value.fill_(1.0)
        elif value.ndim == 0:
            value.fill_(1.0 if "scale" in key else 0.0)
        else:
            fan_in = max(1, value[0].numel())
            value.copy_(torch.randn(value.shape, generator=gen) * (gain / fan_in**0.5))
    return state_dict


def tiny_sd15_unet_state_dict(seed: int = 0):
    """A random-weight UNet that ComfyUI detects as SD1.5 (model_channels 320, context_dim 768,
    two levels with one res block each; ~34M parameters)."""
    import comfy.ops
    import torch
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    unet = UNetModel(
        image_size=32,
        in_channels=4,
        out_channels=4,
        model_channels=320,
        num_res_blocks=[1, 1],
        channel_mult=[1, 1],
        transformer_depth=[1, 0],
        transformer_depth_output=[1, 1, 0, 0],
        transformer_depth_middle=0,
        context_dim=768,
        num_heads=8,
        num_head_channels=-1,
        use_linear_in_transformer=False,
        adm_in_channels=None,
        use_temporal_attention=False,
        use_spatial_transformer=True,
        dtype=torch.float32,
        device="cpu",
        operations=comfy.ops.disable_weight_init,
    )
    return _fill_random(unet.state_dict(), seed, gain=0.5)


def tiny_sd15_model(seed: int = 0):
    """A ModelPatcher holding the tiny SD1.5 UNet, as UNETLoader would give it."""
    import comfy.sd

    return comfy.sd.load_diffusion_model_state_dict(tiny_sd15_unet_state_dict(seed))


def clip_l_state_dict(seed: int = 1):
    """A random-weight CLIP-L text encoder in the layout CLIPLoader(stable_diffusion) reads (fp16)."""
    import comfy.clip_model
    import comfy.ops
    import torch

    config = json.loads((Path(comfy.clip_model.__file__).parent / "sd1_clip_config.json").read_text())
    model = comfy.clip_model.CLIPTextModel(config, torch.float32, "cpu", comfy.ops.disable_weight_init)
    sd = _fill_random(model.state_dict(), seed, gain=1.0)
    sd["text_model.embeddings.token_embedding.weight"].mul_(0.02 * 768**0.5)
    sd["text_model.embeddings.position_embedding.weight"].mul_(0.02 * 768**0.5)
    return {k: v.half() for k, v in sd.items()}


def taesd_state_dict(seed: int = 2):
    """A random-weight TAESD (SD1.5 latent space) that VAELoader accepts as a VAE file."""
    import comfy.taesd.taesd

    model = comfy.taesd.taesd.TAESD(latent_channels=4)
    return _fill_random(model.state_dict(), seed, gain=1.0)


# The key prefixes of an SD1.5 checkpoint as ComfyUI's CheckpointLoaderSimple reads it (the LDM layout):
# the UNet, the CLIP-L text encoder (its "text_model." keys) and the VAE in one file.
CHECKPOINT_PREFIXES = {
    "unet": "model.diffusion_model.",
    "clip": "cond_stage_model.transformer.",
    "vae": "first_stage_model.",
}


def tiny_sd15_checkpoint_state_dict(seed: int = 0):
    """One-file SD1.5 checkpoint: the tiny UNet, CLIP-L and TAESD under ComfyUI's checkpoint key prefixes,
    so that CheckpointLoaderSimple gives the MODEL, CLIP and VAE the separate loaders give."""
    parts = {
        "unet": tiny_sd15_unet_state_dict(seed),
        "clip": clip_l_state_dict(),
        "vae": taesd_state_dict(),
    }
    return {CHECKPOINT_PREFIXES[part] + key: value for part, sd in parts.items() for key, value in sd.items()}


def tiny_sd15_prompt_nodes(positive: str, vae: bool = True) -> dict:
    """API-prompt nodes of the tiny models `ComfyServer.write_models` installs: "1" UNETLoader,
    "2" CLIPLoader, "3" / "4" the positive / empty negative CLIPTextEncode and (with `vae`) "5" VAELoader."""
    nodes = {
        "1": {
            "class_type": "UNETLoader",
            "inputs": {"unet_name": "tiny_sd15_0.safetensors", "weight_dtype": "default"},
        },
        "2": {
            "class_type": "CLIPLoader",
            "inputs": {"clip_name": "tiny_clip_l.safetensors", "type": "stable_diffusion"},
        },
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": positive, "clip": ["2", 0]}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["2", 0]}},
    }
    if vae:
        nodes["5"] = {"class_type": "VAELoader", "inputs": {"vae_name": "tiny_taesd.safetensors"}}
    return nodes


# ---------------------------------------------------------------- the server
CHECKPOINT = "tiny_sd15_checkpoint.safetensors"  # what `ComfyServer.write_models` puts in models/checkpoints


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- no server left behind
# Every ComfyUI a test starts runs in its own process group and is registered here until it stops. The
# group is killed when the fixture ends, at interpreter exit, on SIGINT / SIGTERM / SIGHUP, and (Linux)
# by the kernel when this process dies without any of those (SIGKILL): PR_SET_PDEATHSIG in the child.
_RUNNING: set = set()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL when the process that started it dies (Linux only)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def stop_all_servers() -> None:
    """Stop every ComfyUI this process started and has not stopped yet."""
    for server in list(_RUNNING):
        server.stop()


def _on_signal(signum, frame) -> None:
    stop_all_servers()
    previous = _PREVIOUS_HANDLERS.get(signum)
    if callable(previous):
        previous(signum, frame)  # pytest's own SIGINT handling (KeyboardInterrupt) goes on as before
    else:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


_PREVIOUS_HANDLERS: dict = {}


def _install_cleanup() -> None:
    """Once per process, from the main thread: atexit and signal handlers that stop the servers."""
    if _PREVIOUS_HANDLERS or threading.current_thread() is not threading.main_thread():
        return
    atexit.register(stop_all_servers)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        _PREVIOUS_HANDLERS[signum] = signal.getsignal(signum)
        signal.signal(signum, _on_signal)


class ComfyServer:
    """A headless ComfyUI (`main.py --cpu`) with its own base and user directories (the frontend's
    settings land there, never in a user's ComfyUI), Solune linked into custom_nodes under a
    deliberately odd folder name. It runs in its own process group, stopped whatever ends the test
    run (see `stop_all_servers`)."""

    def __init__(self, comfy_path: Path, base: Path, python: str = sys.executable):
        self.comfy_path, self.base, self.python = comfy_path, base, python
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = base / "comfyui.log"
        self.proc = None

    def write_models(self, unet_seeds=(0,)):
        import comfy.utils

        models = self.base / "models"
        for sub in ("diffusion_models", "text_encoders", "vae", "checkpoints", "controlnet"):
            (models / sub).mkdir(parents=True, exist_ok=True)
        for i, seed in enumerate(unet_seeds):
            comfy.utils.save_torch_file(
                tiny_sd15_unet_state_dict(seed), str(models / "diffusion_models" / f"tiny_sd15_{i}.safetensors")
            )
        comfy.utils.save_torch_file(clip_l_state_dict(), str(models / "text_encoders" / "tiny_clip_l.safetensors"))
        comfy.utils.save_torch_file(taesd_state_dict(), str(models / "vae" / "tiny_taesd.safetensors"))
        comfy.utils.save_torch_file(
            tiny_sd15_checkpoint_state_dict(unet_seeds[0]), str(models / "checkpoints" / CHECKPOINT)
        )
        from comfy_families import SD15_UNET, controlnet_state_dict  # an LDM ControlNet for the tiny SD1.5 UNet

        comfy.utils.save_torch_file(
            controlnet_state_dict(SD15_UNET), str(models / "controlnet" / "tiny_sd15_controlnet.safetensors")
        )

    def start(self, timeout: float = 180.0):
        nodes = self.base / "custom_nodes"
        nodes.mkdir(parents=True, exist_ok=True)
        # odd (capitals, a dash, a dot), not "solune"; no space: with a space in the folder name ComfyUI lists
        # the pack's web files under /extensions/<folder>/ but that route answers 404 (0.3.64 and 0.33.0)
        link = nodes / "Solune_Pack-dev.v2"
        if not link.exists():
            link.symlink_to(REPO, target_is_directory=True)
        for sub in ("input", "output", "temp", "user"):
            (self.base / sub).mkdir(exist_ok=True)
        cmd = [
            self.python,
            str(self.comfy_path / "main.py"),
            "--cpu",
            "--listen",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--base-directory",
            str(self.base),
            "--user-directory",
            str(self.base / "user"),
            "--disable-auto-launch",
        ]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._log = open(self.log_path, "w")
        _install_cleanup()
        self.proc = subprocess.Popen(
            cmd,
            cwd=str(self.comfy_path),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: a Ctrl-C in the terminal is ours to handle
            preexec_fn=_die_with_parent,
        )
        _RUNNING.add(self)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.proc.returncode} while starting:\n{self.log_tail()}")
            try:
                self.get("/object_info/KSampler")
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"ComfyUI did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self):
        """Terminate the server's process group (SIGTERM, then SIGKILL after 20 s) and wait for it."""
        _RUNNING.discard(self)
        if self.proc is not None and self.proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.proc.wait(10)
        if self.proc is not None:
            self._signal_group(signal.SIGKILL)  # anything the server left in its group
        if getattr(self, "_log", None):
            self._log.close()

    def _signal_group(self, signum) -> None:
        try:
            os.killpg(self.proc.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    # -- HTTP
    def get(self, route: str):
        with urllib.request.urlopen(self.url + route, timeout=30) as r:
            return json.loads(r.read())

    def post(self, route: str, payload) -> tuple[int, dict]:
        req = urllib.request.Request(
            self.url + route, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    def run_prompt(self, prompt: dict, timeout: float = 600.0) -> dict:
        """Queue an API-format prompt and wait for its history entry; raises on validation errors."""
        status, body = self.post("/prompt", {"prompt": prompt})
        if status != 200:
            raise PromptRejected(status, body)
        pid = body["prompt_id"]
        deadline = time.time() + timeout
        while time.time() < deadline:
            hist = self.get(f"/history/{pid}")
            if (
                pid in hist
                and hist[pid].get("status", {}).get("completed") is not None
                and (hist[pid]["status"].get("status_str") in ("success", "error"))
            ):
                return hist[pid]
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI died during the prompt:\n{self.log_tail()}")
            time.sleep(0.2)
        raise TimeoutError(f"prompt {pid} did not finish in {timeout} s:\n{self.log_tail()}")


class PromptRejected(Exception):
    def __init__(self, status, body):
        super().__init__(f"HTTP {status}: {json.dumps(body)[:2000]}")
        self.status, self.body = status, body


def load_output_latent(server: ComfyServer, history: dict, node_id: str):
    """The LATENT that a SaveLatent node wrote in this prompt."""
    import safetensors.torch

    info = history["outputs"][node_id]["latents"][0]
    path = server.base / "output" / info.get("subfolder", "") / info["filename"]
    return safetensors.torch.load_file(str(path))["latent_tensor"]
