"""Errors raised by the workflow runner, one class per exit code of `solune.run`."""

from __future__ import annotations

# Exit codes of `python -m solune.run`; the CLI maps each error class to one of these.
EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_VALIDATION = 3
EXIT_EXECUTION = 4
EXIT_SERVER = 5
EXIT_INTERRUPTED = 130


class RunnerError(Exception):
    """Base class: a failure the CLI reports as a message, never as a traceback."""

    exit_code = EXIT_INTERNAL
    # The API-format prompt the failure is about, when known (for node titles in messages).
    prompt: dict | None = None


class WorkflowError(RunnerError):
    """The workflow file, its conversion or a `--set` override is unusable."""

    exit_code = EXIT_BAD_INPUT


class ServerError(RunnerError):
    """The ComfyUI server is unreachable, died, or answered something unexpected.

    `reason` is the bare transport cause (e.g. "Connection refused") when there is one.
    """

    exit_code = EXIT_SERVER

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason


class ValidationFailed(RunnerError):
    """ComfyUI rejected the prompt (HTTP 400 from POST /prompt).

    `error` is ComfyUI's top-level error dict, `node_errors` maps node id to
    `{"errors": [...], "class_type": ...}` exactly as the server sent them.
    """

    exit_code = EXIT_VALIDATION

    def __init__(self, error: dict | str | None, node_errors: dict):
        self.error = error
        self.node_errors = node_errors
        super().__init__(_error_text(error) or "prompt failed validation")


class ExecutionFailed(RunnerError):
    """A node raised while ComfyUI executed the prompt, or the run was interrupted.

    `details` is the data of ComfyUI's `execution_error` / `execution_interrupted`
    message (node_id, node_type, exception_message, ...).
    """

    exit_code = EXIT_EXECUTION

    def __init__(self, details: dict, interrupted: bool = False):
        self.details = details
        self.interrupted = interrupted
        what = "interrupted" if interrupted else details.get("exception_message", "execution failed")
        super().__init__(str(what).strip())


def _error_text(error: dict | str | None) -> str:
    if isinstance(error, dict):
        message = error.get("message", "")
        details = error.get("details", "")
        return f"{message}: {details}" if details else str(message)
    return "" if error is None else str(error)
