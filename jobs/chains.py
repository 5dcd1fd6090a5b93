"""Asset jobs over the core chain."""

import dagster as dg

from assets.partitions import prompt_batch

#: Everything that is materialized per prompt batch, in dependency order.
batch_chain_job = dg.define_asset_job(
    "candidate_chain",
    selection=dg.AssetSelection.groups("data_engine") & dg.AssetSelection.all().materializable(),
    partitions_def=prompt_batch,
    description="The per-batch chain (prompts -> candidate images -> ...) for one or more prompt_batch partitions.",
)
