"""Shared fixtures: the offline tiny UME-R1 checkpoint every test loads through the real code."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.qdrant_server import qdrant_url  # noqa: F401 (a fixture)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# What libraries write to the system's temp folder during a run (gradio's cache of uploads, the
# gradio client's download folders, one per file it fetches) goes to a folder of this run, removed
# at its end: otherwise every run left hundreds of folders in /tmp. Set before gradio is imported,
# which reads GRADIO_TEMP_DIR once.
RUN_TEMP = Path(tempfile.mkdtemp(prefix="ume-tests-"))
os.environ["GRADIO_TEMP_DIR"] = str(RUN_TEMP / "gradio")

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "media"


@pytest.fixture(scope="session", autouse=True)
def run_temp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`tempfile`'s folder is this run's own while tests run (pytest's own folders, made first,
    stay where pytest keeps them)."""
    tmp_path_factory.getbasetemp()
    kept = tempfile.tempdir
    tempfile.tempdir = str(RUN_TEMP)
    yield RUN_TEMP
    tempfile.tempdir = kept
    shutil.rmtree(RUN_TEMP, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random UME-R1 checkpoint directory, built once per test session."""
    from model.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-ume-r1"))


@pytest.fixture(scope="session")
def examples_dir() -> Path:
    return EXAMPLES


# Two inputs and the completions the "taught" model learns to write for them.
TAUGHT_TEXT = "a cat"
TAUGHT_COLOR = (200, 10, 10)
TAUGHT_COMPLETIONS = (
    "<think>cat</think><answer>a cat<gen_emb>",
    "<think>red box here</think><answer><|begin_of_box|>red<|end_of_box|><gen_emb>",
)


def taught_inputs():
    """The inputs the taught model answers in the trained format (document side)."""
    from PIL import Image

    from model.inputs import EmbedInput, text_input

    return [text_input(TAUGHT_TEXT), EmbedInput(image=Image.new("RGB", (100, 60), TAUGHT_COLOR))]


@pytest.fixture(scope="session")
def taught_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model after a few seconds of teacher forcing on two fixed completions.

    A random model never writes `<gen_emb>`; this one does, with different lengths per input, so
    the stop-at-`<gen_emb>` path, the reasoning parser and batching are tested on real output.
    """
    import torch

    from model.encoder import Encoder, document_task, task_text
    from model.engine import append_completions
    from model.inputs import collate

    torch.manual_seed(0)
    encoder = Encoder.from_pretrained(tiny_model_dir)
    tokenizer, ids = encoder.processor.tokenizer, encoder.token_ids
    prepared = [encoder.prepare(i, task_text(i, document_task(i))) for i in taught_inputs()]
    targets = [tokenizer(t + "<|im_end|>")["input_ids"] for t in TAUGHT_COMPLETIONS]
    batch = append_completions(collate(prepared, ids.pad), targets, ids.pad)
    labels = batch["input_ids"].clone()
    for row, target in enumerate(targets):
        labels[row, : -len(target)] = -100
    model = encoder.model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=4e-3)
    for _ in range(70):
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    out = tmp_path_factory.mktemp("taught-ume-r1")
    model.save_pretrained(out)
    encoder.processor.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def encoder(tiny_model_dir: Path):  # -> model.encoder.Encoder; modules may define their own
    from model.encoder import Encoder

    return Encoder.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def taught(taught_model_dir: Path):  # -> model.encoder.Encoder
    from model.encoder import Encoder

    return Encoder.from_pretrained(taught_model_dir)


@pytest.fixture()
def one_thread() -> Iterator[None]:
    """Tiny models train several times faster on one thread than on contended ones."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
