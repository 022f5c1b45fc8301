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
    """ComfyUI rejected the prompt, or some of its outputs (`node_errors` in the answer to POST /prompt).

    `error` is ComfyUI's top-level error dict (None when ComfyUI accepted the valid part), `node_errors`
    maps node id to `{"errors": [...], "dependent_outputs": [...], "class_type": ...}` exactly as the
    server sent them. `partial_prompt_id` is the id ComfyUI gave the valid part when it queued it (the
    runner cancels that part unless --allow-partial), else None.
    """

    exit_code = EXIT_VALIDATION

    def __init__(self, error: dict | str | None, node_errors: dict, partial_prompt_id: str | None = None):
        self.error = error
        self.node_errors = node_errors
        self.partial_prompt_id = partial_prompt_id
        super().__init__(_summary(error) if error else "some outputs failed validation")

    def dropped_outputs(self) -> list[str]:
        """The output nodes that will not run, in ComfyUI's order (`dependent_outputs`)."""
        dropped: list[str] = []
        for report in self.node_errors.values():
            outputs = report.get("dependent_outputs") if isinstance(report, dict) else None
            for output in outputs or []:
                if str(output) not in dropped:
                    dropped.append(str(output))
        return dropped

    def report(self) -> str:
        """What the user reads: the reason, one line per node error (id, title, type, input and
        ComfyUI's own message), and the outputs that will not run."""
        if self.partial_prompt_id is None:
            head = f"ComfyUI rejected the workflow: {_summary(self.error)}"
        else:
            head = "ComfyUI rejected some outputs of the workflow"
        lines = [head]
        for node_id, report in self.node_errors.items():
            report = report if isinstance(report, dict) else {}
            where = describe_node(self.prompt, node_id, report.get("class_type"))
            for error in report.get("errors") or [{}]:
                lines.append(f"  {where}{_input_of(error)}: {_error_text(error) or 'invalid'}")
        dropped = self.dropped_outputs()
        if dropped:
            names = ", ".join(describe_node(self.prompt, node_id, None) for node_id in dropped)
            lines.append(f"outputs that will not run: {names}")
        return "\n".join(lines)


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


def describe_node(prompt: dict | None, node_id: object, class_type: str | None) -> str:
    """`node 4 'Load Checkpoint' (CheckpointLoaderSimple)`; the title only when it differs."""
    node = (prompt or {}).get(str(node_id)) or {}
    class_type = class_type or node.get("class_type") or "?"
    title = (node.get("_meta") or {}).get("title")
    named = f" '{title}'" if title and title != class_type else ""
    return f"node {node_id}{named} ({class_type})"


def _input_of(error: object) -> str:
    """`, input sampler_name` when ComfyUI names the input the error is about."""
    extra = error.get("extra_info") if isinstance(error, dict) else None
    name = extra.get("input_name") if isinstance(extra, dict) else None
    return f", input {name}" if name else ""


def _summary(error: dict | str | None) -> str:
    """ComfyUI's top-level message; its details repeat the node errors printed below, so only the message."""
    if not error:
        return "prompt failed validation"
    if isinstance(error, dict):
        return str(error.get("message") or error.get("details") or "prompt failed validation")
    return str(error)


def _error_text(error: dict | str | None) -> str:
    if isinstance(error, dict):
        message = error.get("message", "")
        details = error.get("details", "")
        return f"{message}: {details}" if details else str(message)
    return "" if error is None else str(error)
