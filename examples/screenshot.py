"""Make docs/screenshot.png: the demo's search page with a query's reasoning beside its hits.

Runs what `make demo` runs (the reference model on its gallery when there is no GPU), serves
the page on a free local port, opens a re-rank search in Debian's Chromium through Playwright
and saves the page as a small palette PNG. Rerun it after changing the page:

    .venv/bin/python examples/screenshot.py            # writes docs/screenshot.png
    .venv/bin/python examples/screenshot.py --out /tmp/page.png --query "which page says light and music"
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from urllib.parse import urlencode

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDTH, HEIGHT = 1280, 860  # a laptop screen; the saved page is as tall as it needs
WAIT_MS = 120_000  # a re-rank search generates the query's reasoning first
# The table of example queries is long and says nothing about how results look: leave it out.
HIDE_EXAMPLES = """() => {
  const texts = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let block = null;
  while (texts.nextNode()) {
    if (texts.currentNode.textContent.includes('Example queries in the words')) {
      block = texts.currentNode.parentElement;
      break;
    }
  }
  while (block && !block.querySelector('table')) block = block.parentElement;
  if (block && !block.querySelector('#ume-results')) block.style.display = 'none';
  document.querySelector('footer')?.style.setProperty('display', 'none');
}"""
PALETTE_COLOURS = 128  # the page is flat colours and small tiles: a palette keeps it ~100 KB


def parse_args() -> argparse.Namespace:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshot.png")
    parser.add_argument("--query", default="two orange circles at the bottom left")
    parser.add_argument("--mode", default="rerank", choices=("fast", "reasoning", "rerank"))
    parser.add_argument("--kind", default="image", choices=("all", "image", "video", "document"))
    parser.add_argument("--top-k", type=int, default=8)
    parser.add_argument("--data-dir", type=Path, default=None, help="the demo's index (default: a temp dir)")
    return parser.parse_args()


def capture(url: str, out: Path) -> None:
    """Open the search link, wait for the query's reasoning and the tiles, save the page."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        browser = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": WIDTH, "height": HEIGHT},
        )
        page = browser.new_page()
        page.goto(url)
        page.locator("#ume-results img").first.wait_for(timeout=WAIT_MS)
        page.wait_for_function(
            "() => (document.querySelector('#ume-query-reasoning textarea')?.value ?? '').length > 0",
            timeout=WAIT_MS,
        )
        page.locator("#ume-results img").first.click()
        page.locator(".ume-detail-header").first.wait_for(timeout=WAIT_MS)
        page.evaluate(HIDE_EXAMPLES)
        page.wait_for_timeout(1_000)  # let the detail pane's image finish drawing
        page.screenshot(path=str(out), full_page=True)
        browser.close()


def shrink(path: Path) -> None:
    """Rewrite the screenshot with a small palette (the page has few colours)."""
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=PALETTE_COLOURS, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def main() -> int:
    args = parse_args()
    if not CHROMIUM.exists():
        raise SystemExit(f"no browser at {CHROMIUM}: apt-get install -y chromium")
    from app.cli.demo_cmd import prepare_demo
    from app.ui.page import build_ui, launch

    with tempfile.TemporaryDirectory() as scratch:
        ctx = prepare_demo(data_dir=args.data_dir or Path(scratch) / "demo")
        demo = launch(build_ui(ctx), ctx, prevent_thread_lock=True, quiet=True)
        try:
            link = urlencode({"q": args.query, "mode": args.mode, "kind": args.kind, "k": args.top_k})
            args.out.parent.mkdir(parents=True, exist_ok=True)
            capture(f"{demo.local_url}?{link}", args.out)
        finally:
            demo.close()
    shrink(args.out)
    print(f"{args.out} ({args.out.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
