"""MMEB-V2 as released: the annotation datasets on the hub plus the media archives, read directly.

`table` maps every task to its source, reader and the authors' prompts; `annotations` finds,
fetches and reads the parquet files; `image_tasks`, `video_tasks` and `visdoc_tasks` build
tasks from them; `load` is the entry point the evaluator calls.
"""
