"""Solune — ComfyUI entry point.

Nothing here imports ComfyUI at import time, so `import solune.velocity` works in a
plain Python; ComfyUI calls `comfy_entrypoint()` when it loads the pack.
"""

WEB_DIRECTORY = "./web"


async def comfy_entrypoint():
    """Return Solune's `ComfyExtension` (ComfyUI's V3 entry point)."""
    from .nodes import SoluneExtension

    return SoluneExtension()


__all__ = ["WEB_DIRECTORY", "comfy_entrypoint"]
