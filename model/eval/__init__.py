"""MMEB-V2 evaluation.

- `published`: the 78-task catalogue and the published tables; `aggregate`: roll-ups;
- `released_*`: the benchmark as released (hub annotations + media), the authors' prompts per task;
- `folder_tasks`, `mmeb_data`, `beir_data`: datasets laid out one folder per dataset (your own);
- `metrics`: ranking, Hit@1, NDCG@5 (and the authors' variant); `variants`: mode pairs and
  combinations; `passk`: pass@k of sampled reasoning; `cache`: embeddings on disk;
- `settings`, `runner`, `report`: one run, from configuration to the JSON and Markdown report.

Kept import-free so that `import model.eval` costs nothing; import the submodule you need.
"""
