"""The page's look and its few lines of browser script (deep links, mode routing, keys).

Scripts are small on purpose: they only move values between the URL and the controls, mark
modes the index cannot serve, click the hidden run button that matches the chosen mode (fast
and generation searches are separate events with separate queues), bring results or their
message into view, and let the arrow keys and Escape move through results.
"""

from __future__ import annotations

import gradio as gr

from app.limits import MAX_QUERY_CHARS

RUN_FAST_ID = "ume-run-fast"
RUN_GENERATE_ID = "ume-run-generate"
SEARCH_BUTTON_ID = "ume-search"
MODE_ID = "ume-mode"
STATUS_ID = "ume-status"
CLOSE_DETAIL_ID = "ume-close-detail"


def theme() -> gr.themes.Base:
    system_fonts = ["ui-sans-serif", "system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"]
    mono_fonts = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]
    return gr.themes.Soft(primary_hue="indigo", neutral_hue="slate", font=system_fonts, font_mono=mono_fonts)


CSS = """
/* width: without it the centred container shrinks to its widest row, wider than a phone */
.gradio-container { max-width: 1400px !important; width: 100%; margin: 0 auto; }
#ume-title h1 { margin: 0; font-size: 1.6rem; letter-spacing: -0.01em; }
#ume-title p { margin: 0.15rem 0 0; color: var(--body-text-color-subdued); }
.ume-banner { padding: 0.6rem 0.9rem; border-radius: 8px; margin-bottom: 0.4rem; font-weight: 600; }
.ume-problem { background: #fde8e8; color: #8a1c1c; border: 1px solid #f5b5b5; }
.ume-test-model { background: #fff4d6; color: #7a4b00; border: 1px solid #f0cf7a; }
.ume-status { color: var(--body-text-color-subdued); font-size: 0.9rem; padding: 0.2rem 0; }
.ume-status.ume-error, .ume-error { color: #b42318; font-weight: 600; }
#ume-mode-help p { margin: 0; font-size: 0.85rem; color: var(--body-text-color-subdued); }
.ume-mode-off { opacity: 0.45; cursor: not-allowed !important; }
.ume-detail-header { padding: 0.2rem 0 0.5rem; }
.ume-detail-name { font-size: 1.1rem; font-weight: 700; word-break: break-all; }
.ume-detail-empty { color: var(--body-text-color-subdued); padding: 2rem 0; text-align: center; }
.ume-badges { display: flex; flex-wrap: wrap; gap: 0.35rem; align-items: center;
  margin: 0.35rem 0; }
.ume-badge { background: var(--background-fill-secondary); color: var(--body-text-color);
  border: 1px solid var(--border-color-primary); border-radius: 999px; padding: 0.1rem 0.6rem;
  font-size: 0.8rem; }
.ume-badge.ume-score { background: var(--color-accent-soft); color: var(--body-text-color);
  font-weight: 700; }
.ume-open { font-size: 0.85rem; margin-left: 0.3rem; }
.ume-path { font-family: var(--font-mono); font-size: 0.78rem;
  color: var(--body-text-color-subdued); word-break: break-all; }
/* tiles as wide as fit, each caption under its picture rather than over it */
#ume-results .grid-container { grid-template-columns: repeat(auto-fill, minmax(140px, 1fr)); }
#ume-results .fixed-height { max-height: none; overflow-y: visible; }  /* the page scrolls, not a box in it */
#ume-results .thumbnail-item { aspect-ratio: auto; height: auto; display: flex;
  flex-direction: column; }
#ume-results .thumbnail-item img { aspect-ratio: 1 / 1; width: 100%; height: auto; flex: none; }
#ume-results .caption-label { position: static; max-width: none; white-space: normal;
  overflow: visible; border: 0; border-top: 1px solid var(--border-color-primary);
  border-radius: 0; line-height: 1.25; font-variant-numeric: tabular-nums; }
#ume-results .thumbnail-lg:hover .caption-label { opacity: 1; }
#ume-examples .gallery { font-size: 0.85rem; }
.ume-progress { appearance: none; width: 100%; height: 0.5rem; border: 0; border-radius: 999px;
  background: var(--border-color-primary); }
.ume-progress::-webkit-progress-bar { background: var(--border-color-primary); border-radius: 999px; }
.ume-progress::-webkit-progress-value { background: var(--color-accent); border-radius: 999px; }
.ume-progress::-moz-progress-bar { background: var(--color-accent); border-radius: 999px; }
.ume-now { font-weight: 600; }
.ume-warning { color: #b54708; font-weight: 600; }
.dark .ume-warning { color: #fdb022; }
/* wide tables scroll sideways inside their box on a phone, headers whole (never "E T A") */
#ume-jobs table, #ume-library table { min-width: 720px; }
#ume-jobs thead *, #ume-library thead * { white-space: nowrap; word-break: keep-all; }
.ume-video { width: 100%; max-height: 420px; border-radius: 8px; background: #000; }
.ume-note { font-size: 0.8rem; color: var(--body-text-color-subdued); }
#ume-reasoning textarea, #ume-query-reasoning textarea, #ume-trace-reasoning textarea {
  font-family: var(--font-mono); font-size: 0.85rem; }
"""

# Search button / Enter: write the query into the URL, then run the event for the mode. A kind
# an example query set goes once the words are no longer the example's; the run waits a turn so
# that the kind shown is the kind it reads.
DISPATCH_SEARCH = f"""
(text, mode, kind, folder, topK, after, before, sort) => {{
  const example = window.umeExample;
  if (example && text !== example.text) {{
    window.umeExample = null;
    if (kind === example.kind) kind = "all";
  }}
  const params = new URLSearchParams();
  // a query over the limit is refused by the search; it must not make the URL too long either
  if (text && text.length <= {MAX_QUERY_CHARS}) params.set("q", text);
  params.set("mode", mode);
  if (kind && kind !== "all") params.set("kind", kind);
  if (folder) params.set("folder", folder);
  params.set("k", String(topK));
  if (after) params.set("after", after);
  if (before) params.set("before", before);
  if (sort && sort !== "score") params.set("sort", sort);
  window.history.replaceState(null, "", "?" + params.toString());
  const target = mode === "fast" ? "{RUN_FAST_ID}" : "{RUN_GENERATE_ID}";
  setTimeout(() => document.getElementById(target)?.click(), 0);
  return kind;
}}
"""

# After the page has read its deep link: run the search it names.
RUN_DEEP_LINK = f"""
() => {{
  const query = new URLSearchParams(window.location.search).get("q");
  if (query) {{
    const button = document.getElementById("{SEARCH_BUTTON_ID}");
    if (button) button.click();
  }}
  return [];
}}
"""

# Grey out the modes the index cannot serve; the tooltip says why.
MARK_MODES = f"""
(reasons) => {{
  let why = {{}};
  try {{ why = JSON.parse(reasons || "{{}}"); }} catch (error) {{ why = {{}}; }}
  document.querySelectorAll("#{MODE_ID} label").forEach((label) => {{
    const input = label.querySelector("input");
    if (!input) return;
    const reason = why[input.value] || "";
    input.disabled = Boolean(reason);
    label.title = reason;
    label.classList.toggle("ume-mode-off", Boolean(reason));
  }});
  return [];
}}
"""

# An example query: remember its words and kind (a query of one's own drops the kind), search.
EXAMPLE_SEARCH = f"""
(text, mode, kind, folder, topK, after, before, sort) => {{
  window.umeExample = {{ text, kind }};
  return ({DISPATCH_SEARCH})(text, mode, kind, folder, topK, after, before, sort);
}}
"""

# Typing a query of one's own after an example: the example's kind no longer applies.
FORGET_EXAMPLE_KIND = """
(kind) => {
  const example = window.umeExample;
  window.umeExample = null;
  return example && kind === example.kind ? "all" : kind;
}
"""

# A kind the person chose stays, whatever they type.
KEEP_CHOSEN_KIND = """
() => { window.umeExample = null; return []; }
"""

# After a search: the status line and the first results in view, scrolling only when needed.
SHOW_RESULTS = f"""
() => {{
  setTimeout(() => {{
    const status = document.getElementById("{STATUS_ID}");
    if (!status) return;
    const first = document.querySelector("#ume-results .thumbnail-item");
    const top = status.getBoundingClientRect().top;
    const bottom = (first || status).getBoundingClientRect().bottom;
    if (top < 0 || bottom > window.innerHeight) window.scrollBy(0, top - 8);
  }}, 50);
  return [];
}}
"""

# After a click on a result: where the detail is below the results (a narrow screen), show it.
SHOW_DETAIL = """
() => {
  setTimeout(() => {
    const pane = document.getElementById("ume-detail");
    if (!pane) return;
    const top = pane.getBoundingClientRect().top;
    if (top < 0 || top > window.innerHeight - 120) pane.scrollIntoView({ block: "start" });
  }, 50);
  return [];
}
"""

# Keys on the results: arrows move to the next or previous result (up and down by a row),
# Escape closes the detail and goes back to the result it showed.
KEYBOARD = f"""
() => {{
  const tiles = () => [...document.querySelectorAll("#ume-results .thumbnail-item")]
    .filter((tile) => tile.offsetParent !== null);
  const perRow = (items) => {{
    const top = items[0].getBoundingClientRect().top;
    return Math.max(1, items.filter((t) => Math.abs(t.getBoundingClientRect().top - top) < 2).length);
  }};
  const go = (tile) => {{ tile.click(); tile.focus(); tile.scrollIntoView({{ block: "nearest" }}); }};
  document.addEventListener("keydown", (event) => {{
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.target.closest("input, textarea, select, [contenteditable=true]")) return;
    const items = tiles();
    const current = items.findIndex((t) => t === document.activeElement);
    const selected = items.findIndex((t) => t.classList.contains("selected"));
    if (event.key === "Escape") {{
      const close = document.getElementById("{CLOSE_DETAIL_ID}");
      if (!close || !document.querySelector("#ume-detail .ume-detail-header")) return;
      close.click();
      const shown = current >= 0 ? current : selected;
      if (shown >= 0) items[shown].focus();
      event.preventDefault();
      return;
    }}
    const inResults = current >= 0 || (selected >= 0 && event.target === document.body);
    if (!items.length || !inResults) return;
    const steps = {{ ArrowRight: 1, ArrowLeft: -1, ArrowDown: perRow(items), ArrowUp: -perRow(items) }};
    if (!(event.key in steps)) return;
    const from = current >= 0 ? current : selected;
    go(items[Math.min(items.length - 1, Math.max(0, from + steps[event.key]))]);
    event.preventDefault();
  }});
}}
"""
