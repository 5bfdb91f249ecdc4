"""`ume eval mmeb --media-root` end to end on the tiny model: released layouts, pass@k, the stop rule."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from app.cli import main as ume
from model.encoder import Encoder
from model.engine import append_completions
from model.eval.passk import expected_best_of_k, pass_at_k
from model.eval.runner import run_mmeb
from model.eval.settings import MmebConfig
from model.inputs import collate, text_input
from tests.model.released_benchmark import ALL_TASKS, write_released

MAX_NEW_TOKENS = 4


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_released(tmp_path_factory.mktemp("released"))


@pytest.fixture(autouse=True)
def empty_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))


def _config(released: tuple[Path, Path], out: Path, tasks: str = "all", **extra: object) -> MmebConfig:
    media, annotations = released
    settings: dict = dict(
        tasks=tasks, batch_size=4, max_new_tokens=MAX_NEW_TOKENS, qry_mode="gen", tgt_mode="gen"
    )
    return MmebConfig(None, out, media_root=media, annotations=annotations, **(settings | extra))


def test_cli_runs_every_released_layout_and_reports_the_papers_table(
    released: tuple[Path, Path], tiny_model_dir: Path, tmp_path: Path
) -> None:
    media, annotations = released
    args = [
        "eval", "mmeb", "--media-root", str(media), "--annotations", str(annotations), "--model",
        str(tiny_model_dir), "--out", str(tmp_path), "--qry-mode", "both", "--tgt-mode", "both",
        "--max-new-tokens", str(MAX_NEW_TOKENS), "--batch-size", "4",
    ]  # fmt: skip
    assert ume(args) == 0
    report = json.loads((tmp_path / "mmeb.json").read_text())
    assert list(report["tasks"]) == list(ALL_TASKS)
    for name, result in report["tasks"].items():
        assert result["source"] == "released" and result["queries"] > 0, name
        assert 0.0 <= result["scores"]["gen-gen"] <= 100.0 and "fused@0.5" in result["scores"], name
    assert report["tasks"]["HMDB51"]["candidates"] == 51
    assert report["tasks"]["VisRAG_ArxivQA"]["skipped"] == {"query has no relevant page in qrels": 1}
    assert report["settings"]["gen_stop"] == "end"
    row = report["paper_table"]["this run"]
    scored = {n: r["scores"]["gen-gen"] for n, r in report["tasks"].items()}
    assert row["I-CLS"] == pytest.approx(scored["ImageNet-1K"])
    assert row["All"] == pytest.approx(np.mean(list(scored.values())))
    assert report["paper_table"]["UME-R1-2B"]["All"] == 60.1
    markdown = (tmp_path / "mmeb.md").read_text()
    assert "## gen-gen in the paper's table" in markdown and "| UME-R1-7B |" in markdown
    assert (tmp_path / "pages" / "ViDoRe_docvqa").is_dir()


def test_the_authors_ndcg_is_reported_where_it_differs(
    released: tuple[Path, Path], encoder: Encoder, tmp_path: Path
) -> None:
    run = run_mmeb(_config(released, tmp_path, "ViDoRe_docvqa"), encoder, say=lambda line: None)
    result = run.results[0]
    assert set(result.authors_scores) <= {"gen-gen"}
    for variant, theirs in result.authors_scores.items():
        assert theirs != pytest.approx(result.scores[variant])
        assert "as the authors' evaluation computes it" in run.markdown


def test_pass_at_1_at_temperature_0_is_the_greedy_score(
    released: tuple[Path, Path], encoder: Encoder, tmp_path: Path
) -> None:
    config = _config(released, tmp_path, "ImageNet-1K,MSR-VTT,ViDoRe_docvqa", samples=3, temperature=0.0,
                     sample_sides="both")  # fmt: skip
    run = run_mmeb(config, encoder, say=lambda line: None)
    for result in run.results:
        greedy = result.scores["gen-gen"]
        assert result.pass_at_k["query"] == pytest.approx([greedy] * 3), result.name
        assert result.pass_at_k["candidate"] == pytest.approx([greedy] * 3), result.name
    assert "## pass@k of gen (3 samples, temperature 0)" in run.markdown


def test_sampled_pass_at_k_is_monotone_in_k(
    released: tuple[Path, Path], encoder: Encoder, tmp_path: Path
) -> None:
    config = _config(released, tmp_path, "ImageNet-1K,MSCOCO_t2i,HMDB51,VisRAG_ArxivQA", samples=4,
                     temperature=1.5, sample_sides="both")  # fmt: skip
    run = run_mmeb(config, encoder, say=lambda line: None)
    for result in run.results:
        for side, curve in result.pass_at_k.items():
            assert len(curve) == 4 and all(0.0 <= value <= 100.0 for value in curve), (result.name, side)
            assert all(a <= b + 1e-9 for a, b in itertools.pairwise(curve)), (result.name, side)
    sampled = list((tmp_path / "cache" / "ImageNet-1K" / "query" / "gen").glob("chunk-*.json"))
    assert len(sampled) > 1  # the samples were encoded, not read back as the greedy vectors


def test_pass_at_k_is_the_unbiased_estimator() -> None:
    outcomes = np.array([1.0, 0.0, 0.0, 1.0, 0.0])  # c = 2 of n = 5
    for k in range(1, 6):
        assert expected_best_of_k(outcomes, k) == pytest.approx(
            1 - np.prod([(3 - i) / (5 - i) for i in range(k)])
        )
    assert pass_at_k(np.array([[0.0, 0.0], [0.0, 1.0]])) == pytest.approx([25.0, 50.0])


def test_decoding_to_the_end_reads_the_last_gen_emb_and_stops_at_endoftext(encoder: Encoder) -> None:
    tokenizer, ids = encoder.processor.tokenizer, encoder.token_ids
    end_of_text = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    word = tokenizer("a")["input_ids"][0]
    script = [word, ids.gen_emb, word, word, ids.gen_emb, end_of_text, word, word, word]

    def scripted(tokens: torch.Tensor, inputs: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
        return torch.tensor([script[min(int(n), len(script) - 1)] for n in before], device=tokens.device)

    prepared = [encoder.prepare(text_input("a cat"), "Represent the given text.")]
    generated: list[list[int]] = []
    to_end = encoder.encode_prepared(
        prepared, mode="gen", max_new_tokens=len(script), override=scripted, stop_at_gen_emb=False,
        on_tokens=lambda index, tokens: generated.append(list(tokens)),
    )  # fmt: skip
    assert generated[-1] == script[:6]  # <|endoftext|> ends the run, as the authors' generate does
    full = append_completions(collate(prepared, ids.pad), [script[:6]], ids.pad)
    with torch.no_grad():
        hidden = encoder.model(**full, output_hidden_states=True).hidden_states[-1][0]
    last_gen = int((full["input_ids"][0] == ids.gen_emb).nonzero()[-1])
    expected = torch.nn.functional.normalize(hidden[last_gen], dim=-1).numpy()
    assert to_end.gen is not None
    np.testing.assert_allclose(to_end.gen[0], expected, atol=1e-5)
    first = encoder.encode_prepared(prepared, mode="gen", max_new_tokens=len(script), override=scripted)
    assert first.gen is not None and not np.allclose(first.gen[0], to_end.gen[0], atol=1e-4)


def test_an_unreadable_dataset_is_left_out_and_the_others_scored(
    released: tuple[Path, Path], tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    media, annotations = released
    partial_media = tmp_path / "media"  # the image archive unpacked, the video frames not
    partial_media.mkdir()
    (partial_media / "image-tasks").symlink_to(media / "image-tasks")
    args = [
        "eval", "mmeb", "--media-root", str(partial_media), "--annotations", str(annotations),
        "--tasks", "ImageNet-1K,HMDB51", "--qry-mode", "disc", "--tgt-mode", "disc",
        "--model", str(tiny_model_dir), "--out", str(tmp_path / "out"),
    ]  # fmt: skip
    assert ume(args) == 1
    assert "not evaluated (see the reports for why): HMDB51" in capsys.readouterr().err
    tasks = json.loads((tmp_path / "out" / "mmeb.json").read_text())["tasks"]
    assert "disc-disc" in tasks["ImageNet-1K"]["scores"] and tasks["ImageNet-1K"]["error"] is None
    assert "unpack MMEB-V2's video-tasks/frames" in tasks["HMDB51"]["error"]


@pytest.mark.parametrize("fixed_shape", [False, True])
def test_both_decode_loops_end_at_endoftext_when_told(encoder: Encoder, fixed_shape: bool) -> None:
    """The fixed-shape (CUDA-graph) loop honours the extra stop token as the eager loop does."""
    from model.engine import Sampling, decode

    tokenizer, ids = encoder.processor.tokenizer, encoder.token_ids
    end_of_text = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    word = tokenizer("a")["input_ids"][0]
    script = [word, ids.gen_emb, word, end_of_text, word, word]

    def scripted(tokens: torch.Tensor, inputs: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
        return torch.tensor([script[min(int(n), len(script) - 1)] for n in before], device=tokens.device)

    batch = collate([encoder.prepare(text_input("a cat"), "Represent the given text.")], ids.pad)
    sampling = Sampling(
        max_new_tokens=len(script), stop_at_gen_emb=False, also_stop_at=(end_of_text,), override=scripted
    )
    out = decode.generate_embeddings(encoder.model, batch, ids, sampling, fixed_shape_steps=fixed_shape)
    assert out.completions[0] == script[:4]
