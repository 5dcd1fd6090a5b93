"""LoRA portrait dataset builder (seed 004): ingest, dedup, focus crop, captions, packaging.

Each stage reads and writes tables under one work folder, so a stage can be re-run alone
after its knobs change; nothing here talks to the network.
"""
