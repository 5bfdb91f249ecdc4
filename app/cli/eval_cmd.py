"""`ume eval mmeb` (the paper's benchmark) and `ume eval collection` (your own data).

`mmeb` measures a model on MMEB-V2 as released (media root + hub annotations) or on datasets
laid out under a data root, in disc, gen or both modes, with pass@k of sampled reasoning, prints
our numbers beside the published ones and writes JSON + Markdown reports; its embeddings are
cached under the output folder so a rerun or an interrupted run only encodes what is missing.
`mmeb download` fetches the annotation files the chosen tasks need. `collection` runs a file of
queries with known answers against an indexed collection in each search mode, so you can
choose a mode on your own data.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from app.cli import UserError
from app.cli.common import add_store_options, model_for, store_from_args
from app.search import SearchService
from app.search_eval import (
    DEFAULT_KS,
    CollectionQuery,
    ModeResult,
    QueryFailed,
    QueryFileError,
    SampledSearchFn,
    SearchFn,
    SearchOutcome,
    collection_markdown,
    evaluate_mode,
    pass_at_k_mode,
    read_queries,
)
from app.search_request import SEARCH_MODES, SearchError, SearchMode, SearchRequest
from indexer.catalog.store import Store
from indexer.config import MODEL_ENV
from model.encoder import DEFAULT_MODEL, Encoder
from model.eval.cache import EvalDataError
from model.eval.folder_tasks import __doc__ as FOLDER_DOC
from model.eval.published import published_models
from model.eval.released_describe import table_markdown
from model.eval.runner import __doc__ as RUNNER_DOC
from model.eval.runner import check_config, download, run_mmeb, select_run
from model.eval.settings import DEFAULT_PUBLISHED_MODEL, DEFAULT_SHORTLIST, MmebConfig
from model.media import MediaError

DEFAULT_OUT = Path("ume-eval")
GENERATING_MODES = ("reasoning", "rerank")  # the search modes whose query reasoning can be sampled
MODES = ("disc", "gen", "both")


def register(subparsers: argparse._SubParsersAction) -> None:
    evaluate = subparsers.add_parser("eval", help="measure retrieval quality (MMEB-V2 or your own data)")
    benchmarks = evaluate.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    _register_mmeb(benchmarks)
    _register_collection(benchmarks)


def _register_mmeb(benchmarks: argparse._SubParsersAction) -> None:
    mmeb = benchmarks.add_parser(
        "mmeb",
        help="MMEB-V2 datasets: disc vs gen vs fused, beside the published scores",
        description="Evaluate a UME-R1 model on MMEB-V2 (`download` first fetches the annotations).",
        epilog=_layout_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mmeb.add_argument(
        "action", nargs="?", choices=("run", "download", "tasks"), default="run",
        help="run (default); download: fetch the annotation files of --tasks from the hub; "
        "tasks: print every task's reader, records, frames, metric and ranking",
    )  # fmt: skip
    mmeb.add_argument("--media-root", type=Path, help="MMEB-V2 media, unpacked (image-tasks/, video-tasks/)")
    mmeb.add_argument(
        "--annotations", type=Path, help="local copies of the hub annotation datasets (DIR/<owner>/<name>)"
    )
    mmeb.add_argument("--data-root", type=Path, help="one folder per dataset of your own (layout below)")
    mmeb.add_argument("--tasks", default="all", help="dataset names, comma-separated, or all (default)")
    mmeb.add_argument("--model", default=os.environ.get(MODEL_ENV, DEFAULT_MODEL), help="hub name or dir")
    mmeb.add_argument("--qry-mode", choices=MODES, default="both", help="query embeddings (default both)")
    mmeb.add_argument("--tgt-mode", choices=MODES, default="both", help="candidate embeddings (default both)")
    mmeb.add_argument("--out", type=Path, default=DEFAULT_OUT, help="reports and the embedding cache")
    mmeb.add_argument("--batch-size", type=int, default=8)
    mmeb.add_argument(
        "--max-new-tokens", type=int, default=8192, help="cap on generated tokens (8192: the paper's setting)"
    )
    mmeb.add_argument(
        "--alphas", default="0.25,0.5,0.75", help="weights of disc in the fused variants (comma-separated)"
    )
    mmeb.add_argument("--shortlist", type=int, default=DEFAULT_SHORTLIST, help="rerank variant: disc top N")
    mmeb.add_argument(
        "--gen-stop", choices=("end", "gen_emb"), default="end",
        help="end: decode to <|im_end|> and read the last <gen_emb> (the authors', default); "
        "gen_emb: stop at the first <gen_emb> (faster)",
    )  # fmt: skip
    mmeb.add_argument("--samples", type=int, default=0, help="pass@k: K sampled rollouts per input (0: off)")
    mmeb.add_argument("--temperature", type=float, default=1.0, help="pass@k: temperature (0: greedy)")
    mmeb.add_argument(
        "--sample-side", choices=("query", "candidate", "both"), default="query",
        help="pass@k: sample the queries (candidates greedy), the candidates, or both in turn",
    )  # fmt: skip
    mmeb.add_argument("--seed", type=int, default=0, help="pass@k: seed of the first sample")
    mmeb.add_argument("--published", default=DEFAULT_PUBLISHED_MODEL, help="published row to compare with")
    mmeb.add_argument("--revision", default=None, help="benchmark revision the data comes from (recorded)")
    mmeb.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: best available)")
    mmeb.set_defaults(handler=run_mmeb_command)


def _layout_help() -> str:
    """Where the data comes from and what is reported, as the runner and folder reader document it."""
    runner = (RUNNER_DOC or "").split("\n\n", 1)[-1].strip()
    folders = (FOLDER_DOC or "").split("\n\n", 1)[-1].strip()
    return f"{runner}\n\nData root layout:\n\n{folders}"


def _register_collection(benchmarks: argparse._SubParsersAction) -> None:
    collection = benchmarks.add_parser(
        "collection",
        help="your own queries with known answers, in each search mode",
        description="Search each query of a JSONL file in each mode and score the hits against "
        'its expected items. One object per line: {"query": "words", "image": "optional path", '
        '"expected": [{"path": "...", "page": 3, "start": 10, "end": 20}]} (page, start and end '
        "optional; a span matches a video segment that overlaps it).",
    )
    add_store_options(collection)
    collection.add_argument("--queries", type=Path, required=True, help="JSONL file of queries")
    collection.add_argument(
        "--model", default=None, help="model (default: the one the collection was built with)"
    )
    collection.add_argument("--modes", default="fast,reasoning,rerank", help="search modes to compare")
    collection.add_argument(
        "--k", default=",".join(map(str, DEFAULT_KS)), help="cut-offs for Hit@k and NDCG@k"
    )
    collection.add_argument("--kind", choices=("image", "video", "document"), help="only this kind")
    collection.add_argument("--folder", help="only items under this folder")
    collection.add_argument("--shortlist", type=int, default=DEFAULT_SHORTLIST, help="rerank: N")
    collection.add_argument("--max-new-tokens", type=int, default=1024, help="cap on query reasoning")
    collection.add_argument(
        "--samples", type=int, default=0, help="pass@k: K sampled searches per query in generating modes"
    )
    collection.add_argument("--temperature", type=float, default=1.0, help="pass@k: temperature (0: greedy)")
    collection.add_argument("--seed", type=int, default=0, help="pass@k: seed of the first sample")
    collection.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the reports go")
    collection.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: best available)")
    collection.set_defaults(handler=run_collection_command)


def parse_floats(text: str, flag: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UserError(f"{flag} takes numbers separated by commas, e.g. 0.25,0.5") from None
    if any(not 0.0 <= value <= 1.0 for value in values):
        raise UserError(f"{flag} values must lie between 0 and 1")
    return values


def parse_ks(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise UserError("--k takes whole numbers separated by commas, e.g. 1,5,10") from None
    if not ks or ks[0] < 1:
        raise UserError("--k needs at least one cut-off, each 1 or more")
    return ks


def run_mmeb_command(args: argparse.Namespace) -> int:
    if args.published not in published_models():
        raise UserError(f"--published must be one of: {', '.join(published_models())}")
    config = MmebConfig(
        media_root=args.media_root,
        annotations=args.annotations,
        gen_stop=args.gen_stop,
        samples=args.samples,
        temperature=args.temperature,
        sample_sides=args.sample_side,
        seed=args.seed,
        data_root=args.data_root,
        out_dir=args.out,
        tasks=args.tasks,
        qry_mode=args.qry_mode,
        tgt_mode=args.tgt_mode,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        alphas=parse_floats(args.alphas, "--alphas"),
        shortlist=args.shortlist,
        published_model=args.published,
        revision=args.revision,
    )
    say = lambda line: print(line, file=sys.stderr)  # noqa: E731
    try:
        if args.action == "tasks":
            print(table_markdown())
            return 0
        if args.action == "download":
            fetched = download(config, say)
            print(f"{len(fetched)} annotation file(s) ready", file=sys.stderr)
            return 0
        check_config(config)
        select_run(config, say)  # fail on a bad layout or missing files before loading a model
        encoder = Encoder.from_pretrained(args.model, device=args.device)
        run = run_mmeb(config, encoder, say=say)
    except EvalDataError as error:
        raise UserError(str(error)) from error
    print(run.markdown)
    print(f"reports: {run.json_path} and {run.markdown_path}", file=sys.stderr)
    if run.failed:
        names = ", ".join(result.name for result in run.failed)
        print(f"not evaluated (see the reports for why): {names}", file=sys.stderr)
        return 1
    return 0


def run_collection_command(args: argparse.Namespace) -> int:
    try:
        queries = read_queries(args.queries)
    except QueryFileError as error:
        raise UserError(str(error)) from error
    ks = parse_ks(args.k)
    if args.samples < 0 or args.temperature < 0:
        raise UserError("--samples and --temperature cannot be negative")
    with store_from_args(args) as store:
        results = collection_results(store, args, queries, ks)
    markdown = collection_markdown(args.collection, results, ks)
    payload = {
        "collection": args.collection,
        "queries_file": str(args.queries),
        "ks": list(ks),
        "samples": args.samples,
        "temperature": args.temperature,
        "modes": [asdict(result) for result in results],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / f"collection-{args.collection}.json"
    markdown_path = json_path.with_suffix(".md")
    json_path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    markdown_path.write_text(markdown, encoding="utf-8")
    print(markdown)
    print(f"reports: {json_path} and {markdown_path}", file=sys.stderr)
    return 0


def requested_modes(text: str) -> list[SearchMode]:
    modes = [mode.strip() for mode in text.split(",") if mode.strip()]
    unknown = [mode for mode in modes if mode not in SEARCH_MODES]
    if unknown or not modes:
        raise UserError(f"--modes takes some of {', '.join(SEARCH_MODES)}, comma-separated")
    return list(dict.fromkeys(modes))  # type: ignore[arg-type]


def collection_results(
    store: Store, args: argparse.Namespace, queries: list[CollectionQuery], ks: tuple[int, ...]
) -> list[ModeResult]:
    """Every requested mode over every query; a mode the index cannot serve says why."""
    modes = requested_modes(args.modes)
    reasons = SearchService(store, args.collection, None).available_modes()
    if all(reasons[mode] is not None for mode in modes):
        raise UserError(str(reasons[modes[0]]))
    model = model_for(store, args.collection, args.model)
    service = SearchService(store, args.collection, Encoder.from_pretrained(model, device=args.device))
    try:
        service.ready_encoder()  # a model that does not match the index fails here, once
    except SearchError as error:
        raise UserError(str(error)) from error
    search = searcher(service, args, depth=max(ks))
    results = [
        evaluate_mode(queries, mode, search, ks) if reasons[mode] is None else ModeResult(mode, reasons[mode])
        for mode in modes
    ]
    if args.samples > 0:
        sampled = sampled_searcher(service, args, depth=max(ks))
        for result in results:
            if result.unavailable is None and result.mode in GENERATING_MODES:
                result.pass_at_k = pass_at_k_mode(queries, result.mode, sampled, args.samples)
    return results


def sampled_searcher(service: SearchService, args: argparse.Namespace, depth: int) -> SampledSearchFn:
    """Search with sampled query reasoning: sample s draws with seed `--seed + s`."""

    def search(query: CollectionQuery, mode: str, index: int) -> SearchOutcome:
        sample = (args.temperature, args.seed + index) if args.temperature > 0 else None
        return searcher(service, args, depth, sample)(query, mode)

    return search


def searcher(
    service: SearchService, args: argparse.Namespace, depth: int, sample: tuple[float, int] | None = None
) -> SearchFn:
    """The search callable the evaluation calls: one query, one mode, the top `depth` hits."""

    def search(query: CollectionQuery, mode: str) -> SearchOutcome:
        try:
            request = SearchRequest(
                text=query.text,
                image=query.image,
                video=query.video,
                mode=mode,
                kind=args.kind,
                folder=args.folder,
                top_k=depth,
                shortlist=args.shortlist,
                max_new_tokens=args.max_new_tokens,
            )
            result = service.search(request, sample=sample)
        except (SearchError, MediaError) as error:
            raise QueryFailed(str(error)) from error
        return SearchOutcome(result.hits, result.seconds)

    return search
