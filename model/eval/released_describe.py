"""The released task table as Markdown: what `ume eval mmeb tasks` prints."""

from __future__ import annotations

from model.eval.published import task_catalogue
from model.eval.released_table import ReleasedTask, released_tasks


def _records(row: ReleasedTask) -> str:
    if row.source is None:
        return f"media: `{row.media_file}`"
    configs = ", ".join(c or "(default)" for c in row.source.configs)
    if len(row.source.configs) > 3:
        configs = f"{len(row.source.configs)} configs"
    return f"`{row.source.repo}` [{configs}] split {row.source.split}"


def table_markdown() -> str:
    """One line per MMEB-V2 task: family, reader, where its records are, metric and ranking."""
    lines = [
        "| task | family | reader | records | frames | metric | ranking |",
        "|---|---|---|---|---|---|---|",
    ]
    table = released_tasks()
    for spec in task_catalogue():
        row = table[spec.name]
        frames = f"`{row.frames}`" if row.frames else "—"
        limit = f" (first {row.limit} rows)" if row.limit else ""
        lines.append(
            f"| {spec.name} | {spec.meta_task} | {row.loader} | {_records(row)}{limit} | {frames} "
            f"| {spec.metric} | {spec.scope} |"
        )
    return "\n".join(lines) + "\n"
