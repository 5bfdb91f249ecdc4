"""The hard world: a 1,000-way gallery of distinct scenes, one-attribute hard negatives, words
the tiny model knows, and an MMEB task that `ume eval mmeb` ranks against the whole gallery."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from model.eval.cache import EvalDataError
from model.eval.folder_tasks import load_task, select_tasks
from model.eval.mmeb_data import Query, Side, Task
from model.eval.published import TaskSpec
from model.eval.report import variants_markdown
from model.eval.variants import score_variants
from model.tiny import build_tokenizer
from model.train.hard_world import draw_scene, hard_world_words
from model.world.hard import (
    ALL_HARD_SCENES,
    HARD_TASK,
    HardScene,
    Thing,
    differences,
    hard_negatives,
    neighbours,
    plan_hard_gallery,
    render_hard_scene,
    write_hard_task,
)
from model.world.scenes import COLOURS


@pytest.fixture(scope="module")
def gallery() -> list[HardScene]:
    return plan_hard_gallery()


def test_the_gallery_has_1000_distinct_scenes_and_captions(gallery: list[HardScene]) -> None:
    assert len(gallery) == 1000
    assert len({scene.key for scene in gallery}) == 1000
    assert len({scene.caption for scene in gallery}) == 1000
    assert len({scene.key for scene in ALL_HARD_SCENES}) == len(ALL_HARD_SCENES) == 192 + 8064
    kinds = {scene.second is None for scene in gallery}
    assert kinds == {True, False}  # counting and relations both asked for


def test_hard_negatives_differ_in_exactly_one_attribute(gallery: list[HardScene]) -> None:
    index = {scene.key: number for number, scene in enumerate(gallery)}
    valid = {scene.key for scene in ALL_HARD_SCENES}
    with_negatives = 0
    for scene in gallery:
        assert all(differences(scene, other) == 1 and other.key in valid for other in neighbours(scene))
        found = hard_negatives(scene, index)
        assert all(differences(scene, gallery[i]) == 1 for i in found)
        with_negatives += bool(found)
    assert with_negatives >= 0.9 * len(gallery)
    relation = HardScene(Thing("red", "circle", "small"), 1, "left of", Thing("blue", "square", "big"))
    # 7 colours + 3 shapes + 1 size for each shape, and the other relation
    assert len(neighbours(relation)) == 2 * 11 + 1
    swapped = HardScene(relation.second, 1, "left of", relation.first)  # type: ignore[arg-type]
    assert differences(relation, swapped) == 6


def test_captions_use_only_vocabulary_words_each_one_token() -> None:
    vocabulary = set(hard_world_words())
    tokenizer = build_tokenizer(hard_world_words())
    for scene in random.Random(0).sample(ALL_HARD_SCENES, 300):
        for text in (scene.caption, scene.summary):
            assert set(text.split()) <= vocabulary, text
            assert len(tokenizer(" " + text)["input_ids"]) == len(text.split()), text


def test_renders_put_the_first_shape_left_of_or_above_the_second() -> None:
    first, second = Thing("red", "square", "big"), Thing("blue", "square", "big")
    rng = random.Random(0)
    for relation, axis in (("left of", 1), ("above", 0)):
        for _ in range(10):
            pixels = np.asarray(render_hard_scene(HardScene(first, 1, relation, second), rng)).astype(int)
            where = {
                name: np.argwhere(np.abs(pixels - COLOURS[name]).sum(axis=2) < 30).mean(axis=0)
                for name in ("red", "blue")
            }
            assert where["red"][axis] < where["blue"][axis], relation
            assert abs(where["red"][1 - axis] - where["blue"][1 - axis]) < 1  # same row or column


def test_the_mmeb_files_load_as_one_global_1000_way_pool(tmp_path: Path) -> None:
    folder = write_hard_task(tmp_path)
    [spec] = select_tasks(tmp_path, HARD_TASK)
    assert (spec.name, spec.scope, spec.metric) == (HARD_TASK, "global", "hit@1")
    task = load_task(tmp_path, spec)
    assert (len(task.queries), len(task.candidates), dict(task.skipped)) == (1000, 1000, {})
    assert all(query.candidate_ids is None for query in task.queries)  # ranked against everything
    records = [json.loads(line) for line in (folder / "records.jsonl").read_text().splitlines()]
    for query, record in zip(task.queries, records, strict=True):
        [positive] = query.relevant_ids
        assert task.candidates[positive].image == folder / record["tgt_img_path"][0]
        assert query.side.task_text.endswith(": " + record["qry_text"])


def test_a_dataset_of_your_own_is_reported_but_never_averaged_in(tmp_path: Path) -> None:
    spec = TaskSpec("Mine", "image", "I-RET", "hit@1", "global")
    task = Task(spec, [Query("q", Side("q"), {0: 1})], [Side("a"), Side("b")])
    vectors = {"disc": np.eye(2)[:1], "gen": np.eye(2)[:1]}
    scores = score_variants(task, vectors, {"disc": np.eye(2), "gen": np.eye(2)})
    table = variants_markdown({name: {"Mine": score} for name, score in scores.items()})
    assert "| own dataset | Mine | 100.0 |" in table
    assert "| overall | All | — |" in table
    (tmp_path / "Bad").mkdir()
    (tmp_path / "Bad" / "task.json").write_text(json.dumps({"modality": "image", "scope": "everywhere"}))
    with pytest.raises(EvalDataError, match="metric must be one of"):
        select_tasks(tmp_path, "Bad")


def test_training_draws_count_scenes_about_as_often_as_the_gallery_shows_them() -> None:
    rng = random.Random(0)
    drawn = [draw_scene(rng) for _ in range(2000)]
    share = sum(scene.second is None for scene in drawn) / len(drawn)
    assert 0.2 < share < 0.3
    assert len({scene.key for scene in drawn if scene.second is not None}) > 1000
