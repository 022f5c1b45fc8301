"""ComfyUI glue: the only part of Solune that imports `comfy` / `comfy_api`."""

from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from .expert_handoff import SoluneExpertHandoff
from .prediction_type import SolunePredictionType
from .refine import SoluneRefine
from .samplers import SAMPLER_NODES
from .stitch import SoluneStitch
from .tile_map import SoluneTileMap
from .tiled_img2img import SoluneTiledImg2Img, SoluneTiledSampler


class SoluneExtension(ComfyExtension):
    """Solune's node list."""

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [
            SolunePredictionType,
            SoluneTiledImg2Img,
            SoluneTiledSampler,
            SoluneTileMap,
            SoluneRefine,
            SoluneStitch,
            SoluneExpertHandoff,
            *SAMPLER_NODES,
        ]


__all__ = ["SoluneExtension"]
