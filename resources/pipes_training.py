"""The external side of a Dagster Pipes training launch.

``PipesSubprocessClient`` (or, on a cluster, ``PipesK8sClient``) runs

    python -m aesthetic_platform.resources.pipes_training <entry args>           # one process
    torchrun --nproc_per_node=N -m aesthetic_platform.resources.pipes_training <entry args>

Every rank trains; rank 0 alone talks to Dagster: it streams logs and reports the
materialization metadata back to the asset that launched it.
"""

import os
import sys

from aesthetic_platform.training.entry import parse_args, run


def main() -> int:
    args = parse_args(sys.argv[1:])
    if int(os.environ.get("RANK", "0")) != 0:
        run(args)
        return 0
    from dagster_pipes import open_dagster_pipes

    with open_dagster_pipes() as pipes:
        pipes.log.info(f"training with {args.config} on {args.pairs}")
        result = run(args)
        summary = result.summary() if result else {}
        pipes.report_asset_materialization(
            metadata={
                "steps": summary.get("steps", 0),
                "resumed_from_step": summary.get("resumed_from_step", 0),
                "model_dir": {"raw_value": summary.get("model_dir", ""), "type": "path"},
                "val_accuracy": {"raw_value": summary.get("val_accuracy", {}), "type": "json"},
            }
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
