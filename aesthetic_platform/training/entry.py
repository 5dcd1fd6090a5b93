"""Training as a process: ``python -m aesthetic_platform.training.entry`` or under torchrun.

    torchrun --nproc_per_node=2 -m aesthetic_platform.training.entry \\
        --config train.json --pairs preference_pairs.parquet --runs-dir runs/ --result result.json

Rank 0 writes ``--result`` (JSON summary) and, given ``--mlflow-run-id``, logs every
step into that MLflow run (tracking URI from ``--mlflow-tracking-uri`` or the env).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aesthetic_platform.atomic import write_json
from aesthetic_platform.paths import DataRoot
from aesthetic_platform.schemas import PREFERENCE_PAIRS
from aesthetic_platform.training.config import TrainConfig
from aesthetic_platform.training.data import load_pair_splits
from aesthetic_platform.training.distributed import init_distributed, shutdown_distributed
from aesthetic_platform.training.loop import TrainResult, train


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True, help="TrainConfig as JSON")
    parser.add_argument("--pairs", type=Path, required=True, help="preference_pairs Parquet file")
    parser.add_argument("--runs-dir", type=Path, required=True, help="folder of resumable runs")
    parser.add_argument("--result", type=Path, help="write the run summary here (rank 0)")
    parser.add_argument("--eval-set", type=Path, default=None, help="frozen evaluation set whose prompts never train")
    parser.add_argument("--home", type=Path, default=None, help="data root the pairs' image paths are read against")
    parser.add_argument("--mlflow-tracking-uri", default=None)
    parser.add_argument("--mlflow-run-id", default=None)
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> TrainResult | None:
    config = TrainConfig.model_validate_json(args.config.read_text(encoding="utf-8"))
    held_out = {p.prompt_hash for p in PREFERENCE_PAIRS.rows(PREFERENCE_PAIRS.read(args.eval_set))} if args.eval_set else set()
    splits = load_pair_splits(args.pairs, held_out, DataRoot(args.home.resolve()) if args.home else None)
    context = init_distributed()
    logger = None
    if context.is_main and args.mlflow_run_id:
        from aesthetic_platform.tracking import MlflowMetricsLogger

        logger = MlflowMetricsLogger(args.mlflow_run_id, tracking_uri=args.mlflow_tracking_uri)
    try:
        result = train(config, splits.train, splits.val, args.runs_dir, logger=logger, context=context)
    finally:
        shutdown_distributed()
    if context.is_main and args.result:
        write_json(args.result, result.summary())
    return result if context.is_main else None


def main(argv: list[str] | None = None) -> int:
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
