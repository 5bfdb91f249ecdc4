"""The page's look and its few lines of browser script (deep links, mode routing).

Scripts are small on purpose: they only move values between the URL and the controls, mark
modes the index cannot serve, and click the hidden run button that matches the chosen mode
(fast and generation searches are separate events with separate queues).
"""

from __future__ import annotations

import gradio as gr

RUN_FAST_ID = "ume-run-fast"
RUN_GENERATE_ID = "ume-run-generate"
SEARCH_BUTTON_ID = "ume-search"
MODE_ID = "ume-mode"


def theme() -> gr.themes.Base:
    system_fonts = ["ui-sans-serif", "system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"]
    mono_fonts = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]
    return gr.themes.Soft(primary_hue="indigo", neutral_hue="slate", font=system_fonts, font_mono=mono_fonts)


CSS = """
.gradio-container { max-width: 1400px !important; margin: 0 auto; }
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
.ume-badge { background: var(--neutral-100); border-radius: 999px; padding: 0.1rem 0.6rem;
  font-size: 0.8rem; }
.ume-badge.ume-score { background: var(--primary-100); color: var(--primary-700);
  font-weight: 700; }
.ume-open { font-size: 0.85rem; margin-left: 0.3rem; }
.ume-path { font-family: var(--font-mono); font-size: 0.78rem;
  color: var(--body-text-color-subdued); word-break: break-all; }
#ume-results .caption-label { white-space: normal; overflow: visible; text-overflow: clip;
  max-width: calc(100% - 12px); line-height: 1.25; font-variant-numeric: tabular-nums; }
.ume-video { width: 100%; max-height: 420px; border-radius: 8px; background: #000; }
.ume-note { font-size: 0.8rem; color: var(--body-text-color-subdued); }
#ume-reasoning textarea, #ume-query-reasoning textarea, #ume-trace-reasoning textarea {
  font-family: var(--font-mono); font-size: 0.85rem; }
"""

# Search button / Enter: write the query into the URL, then run the event for the mode.
DISPATCH_SEARCH = f"""
(text, mode, kind, folder, topK) => {{
  const params = new URLSearchParams();
  if (text) params.set("q", text);
  params.set("mode", mode);
  if (kind && kind !== "all") params.set("kind", kind);
  if (folder) params.set("folder", folder);
  params.set("k", String(topK));
  window.history.replaceState(null, "", "?" + params.toString());
  const target = mode === "fast" ? "{RUN_FAST_ID}" : "{RUN_GENERATE_ID}";
  const button = document.getElementById(target);
  if (button) button.click();
  return [];
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
