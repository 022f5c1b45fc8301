"""Run a ComfyUI workflow from the command line: `python -m solune.run`.

Usage::

    python -m solune.run WORKFLOW.json [--server URL] [--set NODE.INPUT=VALUE ...]
                         [--out DIR] [--comfyui DIR [--python PY] [--comfyui-args ARGS]]
                         [--allow-partial] [--dry-run] [--no-progress] [-v | -vv]

The workflow is queued on a running ComfyUI (`--server`, default
http://127.0.0.1:8188), its progress is drawn on stderr, and every output file
the prompt lists in `/history` (images, SaveLatent's latents, audio, ... anything
with filename/subfolder/type) is downloaded through `/view` into `--out`
(default ./solune-out; `temp` previews go to `--out/temp/`). The saved paths are
printed on stdout, one per line; everything else goes to stderr.

Workflow formats (detected automatically; anything else is rejected):

- API format, from the editor's "Export (API)": an object mapping node ids to
  `{"class_type": ..., "inputs": {...}}`; linked inputs are `[node_id, slot]`.
- UI format, from the editor's "Save": an object with `nodes` and `links` lists.
  It is converted with the server's `/object_info`: `widgets_values` are matched
  to the node's widget inputs in `input_order` (required, then optional),
  skipping the `control_after_generate` value saved after seeds; converted
  widgets take their link instead; `Reroute` and `PrimitiveNode` are resolved;
  muted nodes (mode 2) are dropped; bypassed nodes (mode 4) pass their input of
  the matching type through (chains resolve transitively); notes and groups are
  ignored; subgraphs are flattened as the editor's graphToPrompt does (a node
  inside one gets the id SUBGRAPH_NODE_ID:INNER_ID; promoted widgets feed the
  inner inputs they are linked to). Unknown node types, widget-count mismatches and required inputs left
  unconnected (e.g. by muting their source) are reported per node.

`--set NODE.INPUT=VALUE` (repeatable) edits the API-format prompt after
conversion. NODE is, first match wins: a node id (a node inside a subgraph is
SUBGRAPH_NODE_ID:INNER_ID, `14:9`, nested `14:20:5`, as "Export (API)" numbers
it); a unique title (`_meta.title`; an untitled node answers to its display
name, as the editor writes it); a unique title without its trailing " (...)"
(`Sol UNet` for `Sol UNet (sol_unet.safetensors)`); a unique class type.
Titles may contain dots: the key is split on its last '.'. VALUE is parsed as
JSON when it parses, else used as a string:
`--set 3.steps=30 --set "Positive.text=a cat" --set 14:9.seed=7`. Every NODE
is checked against the workflow file before ComfyUI is started or queued; a
name that matches no node lists the nodes' ids and titles.

`--comfyui DIR` starts a headless ComfyUI from DIR for this run only
(`main.py --cpu --listen 127.0.0.1 --port <free port>`, run with this Python
or `--python`, plus `--comfyui-args`), with this checkout loaded as the custom
node pack `solune` through a temporary `--extra-model-paths-config` that lists
a `custom_nodes` folder. It waits for `/object_info` (`--startup-timeout`),
runs the workflow and always stops the server afterwards. Set
SOLUNE_KEEP_COMFYUI_LOG=1 to keep its temporary folder and log.

Warnings Solune's nodes raise while running (an all-zero mask, a mask stretched
to another aspect ratio, a tile clamped to the image, ...) are printed on stderr
as `warning from node ID 'Title' (Type): ...` (they come over the websocket).

Progress comes from ComfyUI's `/ws` websocket feed; if the server refuses the
websocket upgrade, the runner polls `/history` and `/queue` instead (coarser
progress). Ctrl-C asks the server to cancel the prompt.

Exit codes:

    0    success: the prompt ran and its outputs were downloaded
    2    bad input or usage: unreadable or unrecognised workflow JSON, unknown
         node type, widget-count mismatch, unconnected required input, bad
         --set, missing --comfyui folder, unwritable --out
    3    validation error: ComfyUI rejected the prompt or some of its outputs
         (`node_errors` in the answer to POST /prompt); for each failing node its
         id, title, class_type, input and ComfyUI's own message are printed, and
         the outputs that will not run (a missing model file arrives this way).
         When ComfyUI accepted the other outputs it has already queued them: the
         runner cancels that prompt at once, unless --allow-partial, which
         prints the same report and runs the outputs ComfyUI accepted
    4    execution error: a node raised while running (node id, class_type and
         ComfyUI's exception message are printed), or the run was interrupted
    5    server problem: unreachable server (the URL is named), connection lost
         mid-run, unexpected answer, or a --comfyui server that failed to start
         or died (the tail of its log is printed)
    130  interrupted with Ctrl-C
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import shlex
import sys
from pathlib import Path

from .workflow.client import DEFAULT_SERVER, ComfyClient
from .workflow.convert import detect_format, to_api
from .workflow.errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    ExecutionFailed,
    RunnerError,
    ServerError,
    ValidationFailed,
    WorkflowError,
    describe_node,
)
from .workflow.follow import run_prompt
from .workflow.local_server import LocalComfyUI
from .workflow.outputs import download_outputs, output_files
from .workflow.overrides import apply_overrides, check_overrides, parse_override
from .workflow.progress import Console, PromptProgress

log = logging.getLogger("solune.run")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m solune.run",
        description="Queue a ComfyUI workflow (API or UI format), follow it, download its outputs.",
        epilog="Exit codes: 0 ok, 2 bad input, 3 validation error, 4 execution error, 5 server problem.",
    )
    parser.add_argument("workflow", help="workflow JSON file (API or UI format), or - for stdin")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--server", default=DEFAULT_SERVER, help=f"ComfyUI server URL (default {DEFAULT_SERVER})")
    where.add_argument("--comfyui", metavar="DIR", help="start a headless ComfyUI from this folder for this run")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="NODE.INPUT=VALUE",
        help="set an input after conversion; NODE is an id (inside a subgraph SUBGRAPH_ID:INNER_ID, e.g. 14:9), "
        "a title, a title without its ' (...)' suffix, or a class type; VALUE is JSON or a string",
    )
    parser.add_argument(
        "--out", default="solune-out", metavar="DIR", help="where to save outputs (default ./solune-out)"
    )
    parser.add_argument("--python", metavar="PY", help="Python used to start --comfyui (default: this one)")
    parser.add_argument(
        "--comfyui-args", default="", metavar="ARGS", help="extra arguments for --comfyui's main.py, one string"
    )
    parser.add_argument(
        "--startup-timeout", type=float, default=300.0, metavar="S", help="seconds to wait for --comfyui to start"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the API-format prompt on stdout instead of queueing it"
    )
    parser.add_argument(
        "--allow-partial",
        action="store_true",
        help="when ComfyUI rejects some outputs, report them and run the others (default: exit 3, run nothing)",
    )
    parser.add_argument("--no-progress", action="store_true", help="do not draw the progress bar")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log diagnostics (-v info, -vv debug)")
    return parser


def load_workflow(path: str) -> object:
    """Read and parse the workflow JSON (`-` reads stdin)."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise WorkflowError(f"cannot read workflow {path}: {error}") from error
    try:
        return json.loads(text)
    except ValueError as error:
        raise WorkflowError(f"{path} is not valid JSON: {error}") from error


def main(argv: list[str] | None = None, console: Console | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=(logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)],
        format="%(levelname)s %(name)s: %(message)s",
    )
    console = console or Console(show_progress=not args.no_progress)
    try:
        return _run(args, console)
    except ValidationFailed as failure:
        console.say(validation_message(failure))
        return failure.exit_code
    except ExecutionFailed as failure:
        console.say(execution_message(failure))
        return failure.exit_code
    except RunnerError as failure:
        console.say(str(failure))
        return failure.exit_code
    except KeyboardInterrupt:
        console.say("interrupted")
        return EXIT_INTERRUPTED


def _run(args: argparse.Namespace, console: Console) -> int:
    data = load_workflow(args.workflow)
    kind = detect_format(data)
    overrides = [parse_override(text) for text in args.overrides]
    if args.comfyui:
        check_overrides(data, overrides)  # before the server starts: a wrong --set costs no start
    try:
        extra_args = shlex.split(args.comfyui_args)
    except ValueError as error:
        raise WorkflowError(f"--comfyui-args: {error}") from error

    local = None
    if args.comfyui:
        local = LocalComfyUI(
            args.comfyui, python=args.python, extra_args=extra_args, startup_timeout=args.startup_timeout
        )
        console.say(f"starting ComfyUI from {local.comfyui_dir} ...")
    with local if local is not None else contextlib.nullcontext(args.server) as url:
        try:
            return _run_on(ComfyClient(url), data, kind, overrides, args, console)
        except ServerError as error:
            if local is not None and local.died():
                raise ServerError(
                    f"{error}\nthe ComfyUI started by --comfyui died; last lines of its log:\n{local.log_tail()}"
                ) from error
            raise


def _run_on(
    client: ComfyClient, data: object, kind: str, overrides: list, args: argparse.Namespace, console: Console
) -> int:
    object_info = client.object_info() if kind == "ui" or overrides else None
    prompt = to_api(data, object_info)
    if not prompt:
        raise WorkflowError("the workflow has no nodes to run (they are all muted, bypassed or frontend-only)")
    apply_overrides(prompt, overrides, object_info, workflow=data)
    if args.dry_run:
        sys.stdout.write(json.dumps(prompt, indent=2) + "\n")
        return EXIT_OK

    progress = PromptProgress(console, prompt)
    try:
        prompt_id, entry = run_prompt(client, prompt, progress, allow_partial=args.allow_partial)
    except (ValidationFailed, ExecutionFailed) as failure:
        failure.prompt = prompt
        raise
    files = output_files(entry)
    if not files:
        console.say(f"prompt {prompt_id} finished; it listed no output files")
        return EXIT_OK
    written = download_outputs(client, files, Path(args.out))
    for path in written:
        sys.stdout.write(f"{path}\n")
    sys.stdout.flush()
    console.say(f"prompt {prompt_id} finished; saved {len(written)} file(s) to {args.out}")
    return EXIT_OK


def validation_message(failure: ValidationFailed) -> str:
    """ComfyUI's reason, one line per failing node and input, the outputs that will not run."""
    text = failure.report()
    if failure.partial_prompt_id is not None:
        text += (
            f"\nComfyUI had queued the outputs it accepted (prompt {failure.partial_prompt_id}): the runner "
            "cancelled that prompt at once and downloaded nothing (a fast part may have run on the server before "
            "the cancel arrived); fix the inputs above, or pass --allow-partial to run the rest"
        )
    return text


def execution_message(failure: ExecutionFailed) -> str:
    """Which node failed, its class_type and ComfyUI's exception message."""
    details = failure.details
    where = describe_node(failure.prompt, details.get("node_id", "?"), details.get("node_type"))
    if failure.interrupted:
        return f"the run was interrupted on the server at {where}"
    traceback = details.get("traceback")
    if traceback:
        log.info("ComfyUI traceback:\n%s", "".join(traceback) if isinstance(traceback, list) else traceback)
    kind = details.get("exception_type")
    message = str(details.get("exception_message", "")).strip() or "no message"
    return f"{where} failed during execution: {kind + ': ' if kind else ''}{message}"


if __name__ == "__main__":
    sys.exit(main())
