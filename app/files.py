"""Safe file serving: the UI hands out only indexed files that lie inside indexed roots.

Every path the UI reads or links to (a hit's image, a video's URL, a PDF page to render) passes
`ServedFiles.check`, and every request to Gradio's file route passes the same check through
`FileRouteGuard`, so no parameter (a hit id, a URL, an edited request) can reach anything else.

Design decisions:
- A path must be absolute and free of `..` segments as given; traversal attempts are refused
  even when they would normalise to an allowed file, so they never probe the file system.
- Symlinks are resolved and the target must still be inside the same root.
- When the index can be asked (`is_indexed`), the file must also hold indexed items: a root
  may contain hidden or failed files that were never meant to be shown.
- Gradio's own allowed_paths are set to the same roots, so its checks stand behind ours.
- Files Gradio wrote itself (its upload and cache folders: thumbnails, rendered pages) are left
  to Gradio's own checks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import quote

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

FILE_ROUTE_MARKER = "/file="
FILE_URL_PREFIX = "gradio_api/file="  # relative, so it works under a proxy's path prefix


class FileAccessError(Exception):
    """A path the UI refuses to serve; the message says why in one line."""


class ServedFiles:
    """The set of files the UI may show: indexed files inside the indexed roots."""

    def __init__(
        self, roots: Iterable[str | Path] = (), is_indexed: Callable[[str], bool] | None = None
    ) -> None:
        self._roots: list[Path] = []
        self._is_indexed = is_indexed
        for root in roots:
            self.add_root(root)

    @property
    def roots(self) -> list[Path]:
        return list(self._roots)

    def add_root(self, root: str | Path) -> Path:
        """Allow files under `root` (a folder the index was built from)."""
        folder = Path(os.path.abspath(Path(root).expanduser()))
        if folder not in self._roots:
            self._roots.append(folder)
        return folder

    def root_of(self, path: str | Path) -> Path | None:
        """The root that holds `path` by name (before resolving links), or None."""
        lexical = Path(os.path.abspath(path))
        return next((root for root in self._roots if lexical.is_relative_to(root)), None)

    def check(self, path: str | Path) -> Path:
        """The file to open for `path`, or `FileAccessError` when it must not be served."""
        text = str(path)
        if not text or "\x00" in text:
            raise FileAccessError("refused: empty or malformed path")
        if not Path(text).is_absolute() or ".." in Path(text).parts:
            raise FileAccessError(f"refused: {text!r} is not a plain absolute path")
        root = self.root_of(text)
        if root is None:
            raise FileAccessError(f"refused: {text!r} is outside the indexed folders")
        resolved = _resolve(text)
        if not resolved.is_relative_to(root.resolve()) or not resolved.is_file():
            raise FileAccessError(f"refused: {text!r} does not resolve to a file in {root}")
        if self._is_indexed is not None and not self._is_indexed(os.path.abspath(text)):
            raise FileAccessError(f"refused: {text!r} is not an indexed file")
        return resolved

    def url(self, path: str | Path) -> str:
        """A relative URL for Gradio's file route, for a path that passes `check`."""
        self.check(path)
        return FILE_URL_PREFIX + quote(os.path.abspath(path))


def _resolve(text: str) -> Path:
    try:
        return Path(text).resolve(strict=True)
    except (OSError, RuntimeError, ValueError) as error:  # missing, a link loop, a NUL byte
        raise FileAccessError(f"refused: {text!r} cannot be opened") from error


def gradio_owned_folders() -> list[Path]:
    """Folders Gradio writes to itself (uploads, cached outputs); their files are Gradio's."""
    from gradio import utils

    folders = [Path(utils.get_upload_folder()), Path(utils.get_cache_folder())]
    return [Path(os.path.abspath(folder)).resolve() for folder in folders]


class FileRouteGuard:
    """ASGI middleware: a request to Gradio's file route must pass `ServedFiles.check`.

    Install with `launch(app_kwargs={"middleware": [Middleware(FileRouteGuard, files=...)]})`.
    """

    def __init__(self, app: ASGIApp, files: ServedFiles) -> None:
        self.app = app
        self.files = files
        self.gradio_folders = gradio_owned_folders()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self.refusal(str(scope.get("path", "")))
            if refusal is not None:
                await PlainTextResponse(refusal, status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, request_path: str) -> str | None:
        """Why a request path must be refused, or None to let it through."""
        _, marker, target = request_path.partition(FILE_ROUTE_MARKER)
        if not marker or target.startswith(("http://", "https://")):
            return None  # not a file request, or a URL that Gradio itself vets
        if self._gradio_owned(target):
            return None
        try:
            self.files.check(target)
        except FileAccessError as error:
            return str(error)
        return None

    def _gradio_owned(self, target: str) -> bool:
        if "\x00" in target or ".." in Path(target).parts or not Path(target).is_absolute():
            return False
        try:
            resolved = Path(target).resolve()
        except (OSError, RuntimeError, ValueError):
            return False
        return any(resolved.is_relative_to(folder) for folder in self.gradio_folders)
