"""Run ComfyUI workflows from the command line (see `solune.run`), standard library only.

- `convert`: UI-format (editor "Save") to API-format conversion against `/object_info`
- `widgets`: which inputs are widgets and how `widgets_values` lines up with them
- `overrides`: `--set NODE.INPUT=VALUE`
- `client`, `websocket`: HTTP and `/ws` talk with a ComfyUI server
- `follow`: queue a prompt and follow it to its history entry
- `outputs`: list and download a finished prompt's files
- `local_server`: start a throwaway headless ComfyUI with this pack loaded
- `progress`: stderr messages and the progress bar
"""

from .client import DEFAULT_SERVER, ComfyClient
from .convert import detect_format, to_api, ui_to_api
from .errors import (
    EXIT_BAD_INPUT,
    EXIT_EXECUTION,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SERVER,
    EXIT_VALIDATION,
    ExecutionFailed,
    RunnerError,
    ServerError,
    ValidationFailed,
    WorkflowError,
)
from .overrides import Override, apply_overrides, parse_override

__all__ = [
    "DEFAULT_SERVER",
    "ComfyClient",
    "detect_format",
    "to_api",
    "ui_to_api",
    "EXIT_OK",
    "EXIT_BAD_INPUT",
    "EXIT_VALIDATION",
    "EXIT_EXECUTION",
    "EXIT_SERVER",
    "EXIT_INTERRUPTED",
    "RunnerError",
    "WorkflowError",
    "ServerError",
    "ValidationFailed",
    "ExecutionFailed",
    "Override",
    "apply_overrides",
    "parse_override",
]
