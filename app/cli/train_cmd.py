"""`ume train sft` and `ume train rl`: the two stages that make a UME-R1 model.

Settings come from `--config FILE` (TOML or JSON, see `model.train.config.SFTConfig` and
`RLConfig`); every scalar setting also has a flag (`--lr 1e-4`, `--output-dir runs/x`), and
flags win over the file. `--data FILE` adds a training file (released format unless
`--data-format plain`). Run several processes with torchrun: they split each batch and share
in-batch negatives (SFT) or the reward pool (RL).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from app.cli import UserError
from model.train.config import ConfigError, DataSource, RLConfig, SFTConfig, TrainConfig, load_config

# Settings that are lists of sources, not single values: set through --data instead.
NOT_FLAGS = {"data", "fixed_eval_data"}  # files: given as paths below, in the --data format
STAGES: dict[str, tuple[type[TrainConfig], str]] = {
    "sft": (SFTConfig, "stage 1: cold-start SFT (contrastive + reasoning LM loss)"),
    "rl": (RLConfig, "stage 2: GRPO with the embedding-ranking reward, from an SFT checkpoint"),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser("train", help="train a UME-R1 model")
    stages = train.add_subparsers(dest="stage", metavar="STAGE", required=True)
    for name, (kind, help_text) in STAGES.items():
        stage = stages.add_parser(name, help=help_text)
        stage.add_argument("--config", type=Path, default=None, help="TOML or JSON settings file")
        stage.add_argument(
            "--data", type=Path, action="append", default=None, help="training file (repeatable)"
        )
        stage.add_argument("--data-format", choices=("released", "plain"), default="released")
        stage.add_argument("--data-root", type=Path, default=None, help="media paths are relative to this")
        if "fixed_eval_data" in kind.model_fields:
            stage.add_argument(
                "--fixed-eval-data",
                type=Path,
                action="append",
                default=None,
                help="held-out pairs for the fixed batches, in the --data format (repeatable)",
            )
        for field_name, field in kind.model_fields.items():
            if field_name not in NOT_FLAGS:
                flag = "--" + field_name.replace("_", "-")
                stage.add_argument(
                    flag, dest=f"set_{field_name}", default=None, metavar="VALUE", help=field.description
                )
        stage.set_defaults(handler=run_stage, config_kind=kind)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The file's settings with the flags applied on top."""
    overrides: dict[str, Any] = {
        key.removeprefix("set_"): value for key, value in vars(args).items() if key.startswith("set_")
    }
    try:
        config = load_config(args.config, args.config_kind)
        for field_name in ("data", "fixed_eval_data"):  # files given as flags, in --data's format
            if paths := getattr(args, field_name, None):
                overrides[field_name] = sources_of(paths, args)
        config = config.with_overrides(overrides)
    except ConfigError as error:
        raise UserError(str(error)) from error
    if not config.data:
        raise UserError("no training data: add --data FILE or a [[data]] table to the config")
    return config


def sources_of(paths: list[Path], args: argparse.Namespace) -> list[dict[str, Any]]:
    return [DataSource(path=p, format=args.data_format, root=args.data_root).model_dump() for p in paths]


def run_stage(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    logging.getLogger("model.train").setLevel(logging.INFO)
    try:
        if isinstance(config, RLConfig):
            from model.train.rl import RLRun

            run: Any = RLRun(config)
        else:
            from model.train.sft import SFTRun

            assert isinstance(config, SFTConfig)  # the sft parser builds one
            run = SFTRun(config)
        final = run.run()
    except ConfigError as error:
        raise UserError(str(error)) from error
    if run.skipped.total:
        print(f"skipped {run.skipped.total} records: {run.skipped.summary()}")
    if final is not None:
        print(f"trained to step {run.step}; checkpoint: {final}")
    return 0
