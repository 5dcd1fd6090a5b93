"""The character suite's job: dataset -> classifier -> student, prototypes, fusion and the guided generator."""

import dagster as dg

from aesthetic_platform.assets.characters import GROUP

characters_job = dg.define_asset_job(
    "characters",
    selection=dg.AssetSelection.groups(GROUP),
    description="Render or scan the character dataset, train the classifier, distil the student, and build the "
    "prototype database, the image+text fusion and the classifier-guided generator on it.",
)
