// Shows the warnings Solune's nodes send while they run (nodes/user_warnings.py: the websocket event
// "solune.warning" with {message, node, prompt_id}) as a toast in ComfyUI's web UI. The same text is in
// ComfyUI's console log; `python -m solune.run` prints it on stderr.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const EVENT = "solune.warning";
const LIFE_MS = 15000;
// ComfyUI lists this file twice when the pack's folder is not named "solune" (once under the folder's
// name for WEB_DIRECTORY, once under pyproject's project name): the second copy does nothing.
const LOADED = Symbol.for("solune.warnings.loaded");

function nodeLabel(nodeId) {
  const node = nodeId == null ? null : app.graph?.getNodeById?.(nodeId);
  if (node) return `${node.title || node.type} #${nodeId}`;
  return nodeId == null ? "Solune" : `node #${nodeId}`;
}

function showWarning({ detail }) {
  const message = String(detail?.message ?? "");
  const summary = `Solune: ${nodeLabel(detail?.node)}`;
  const toast = app.extensionManager?.toast;
  if (toast?.add) {
    toast.add({ severity: "warn", summary, detail: message, life: LIFE_MS });
  } else if (app.ui?.dialog?.show) {
    app.ui.dialog.show(`${summary}: ${message}`);
  }
}

if (!window[LOADED]) {
  window[LOADED] = true;
  app.registerExtension({
    name: "solune.warnings",
    setup() {
      api.addEventListener(EVENT, showWarning);
    },
  });
}
