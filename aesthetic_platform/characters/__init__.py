"""Character classifier suite (seed 002): one anime-character classifier and what is built around it.

``render`` draws procedural characters so the suite has real signal without downloads,
``data`` reads and validates folder-per-class datasets and splits them, ``classifier``
trains the timm EfficientNet-B0 classifier, ``distill`` compresses it into a MobileNetV2
student. Submodules are imported on use: torch and timm load only when a model is touched.
"""
