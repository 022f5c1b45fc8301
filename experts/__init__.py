"""Expert handoff: one sampling run, two experts, each evaluated in its own frame (pure torch)."""

from .handoff import ExpertHandoff, check_fraction, smoothstep

__all__ = ["ExpertHandoff", "check_fraction", "smoothstep"]
