"""Configuration of the character suite, one pydantic model per capability (no Dagster).

The Dagster side subclasses these models (``class X(dg.Config, ClassifierConfig)``), so the
launchpad shows exactly these fields and defaults. Defaults follow seed 002 (224×224,
EfficientNet-B0, MobileNetV2 student); tests and benchmarks pass smaller values.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator


class RenderConfig(BaseModel):
    """The procedural character renderer: how many characters, how many images each, how varied."""

    characters: int = Field(default=32, ge=2, le=1000, description="Characters (classes) to draw.")
    images_per_character: int = Field(default=60, ge=1, description="Images written per character.")
    image_size: int = Field(default=224, ge=32, le=1024, description="Side of the square images in pixels.")
    seed: int = Field(default=0, description="Seed of the character designs (which hair, eyes, outfit each character has).")
    first_character: int = Field(
        default=0, ge=0, description="Index of the first character drawn: characters beyond a training set's range are unseen ones."
    )
    image_seed: int = Field(default=0, description="Seed of the per-image variation (pose, scale, background, lighting).")
    pose_jitter: float = Field(default=1.0, ge=0.0, le=3.0, description="Scale of pose variation (head tilt, offset); 0 = frontal.")
    scale_min: float = Field(default=0.75, ge=0.2, le=2.0, description="Smallest scale of the character relative to the canvas.")
    scale_max: float = Field(default=1.1, ge=0.2, le=2.0, description="Largest scale of the character relative to the canvas.")
    lighting: float = Field(default=0.25, ge=0.0, le=1.0, description="Strength of the lighting variation (brightness, tint, gradient).")

    @model_validator(mode="after")
    def _check_scale(self) -> RenderConfig:
        if self.scale_min > self.scale_max:
            raise ValueError(f"scale_min ({self.scale_min}) must not exceed scale_max ({self.scale_max})")
        return self


class DatasetConfig(BaseModel):
    """A folder-per-class dataset (``<root>/<character>/*.png``): where it is, how it is checked and split."""

    source_dir: str = Field(
        default="", description="Folder-per-class dataset to use; empty means render the procedural characters under the data root."
    )
    val_fraction: float = Field(
        default=0.15, ge=0.0, lt=1.0, description="Share of each class held out for validation (checkpoint choice)."
    )
    test_fraction: float = Field(default=0.15, ge=0.0, lt=1.0, description="Share of each class held out for the final test.")
    split_seed: int = Field(default=0, description="Seed of the stratified split.")
    min_images_per_class: int = Field(default=3, ge=1, description="Classes with fewer readable images are refused (named in the error).")
    max_imbalance: float = Field(
        default=10.0, ge=1.0, description="Largest/smallest class size ratio above which the dataset check fails (reported either way)."
    )

    @model_validator(mode="after")
    def _check_fractions(self) -> DatasetConfig:
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError(f"val_fraction + test_fraction must stay below 0.9, got {self.val_fraction + self.test_fraction:.2f}")
        return self


class ClassifierConfig(BaseModel):
    """The character classifier: a timm backbone with a new head, and how it is trained."""

    model_name: str = Field(default="efficientnet_b0", description="timm model name of the backbone.")
    pretrained: str = Field(
        default="", description="timm pretrained tag (e.g. 'ra_in1k'); empty = random init. Never downloaded: see pretrained_file."
    )
    pretrained_file: str = Field(default="", description="Local weights file for the pretrained tag (required when pretrained is set).")
    image_size: int = Field(default=224, ge=32, le=1024, description="Side of the square model input.")
    dropout: float = Field(default=0.2, ge=0.0, lt=1.0, description="Dropout before the classification head.")
    epochs: int = Field(default=10, ge=1, description="Training epochs.")
    batch_size: int = Field(default=32, ge=1, description="Images per step.")
    lr: float = Field(default=1e-3, gt=0, description="AdamW learning rate (cosine-annealed to zero over the run).")
    weight_decay: float = Field(default=0.05, ge=0, description="AdamW weight decay.")
    rotation_degrees: float = Field(default=15.0, ge=0, le=180, description="Random rotation range (±degrees).")
    hflip: float = Field(default=0.5, ge=0, le=1, description="Probability of a horizontal flip.")
    color_jitter: float = Field(default=0.2, ge=0, le=1, description="Brightness/contrast/saturation jitter strength (hue gets a quarter).")
    val_fraction: float = Field(default=0.15, ge=0.0, lt=1.0, description="Validation share when the dataset carries no split.json.")
    test_fraction: float = Field(default=0.15, ge=0.0, lt=1.0, description="Test share when the dataset carries no split.json.")
    split_seed: int = Field(default=0, description="Split seed when the dataset carries no split.json.")
    seed: int = Field(default=0, description="Seed of initialisation, augmentation and batch order.")
    device: str = Field(default="", description="torch device; empty = cuda when available, else cpu.")
    num_workers: int = Field(default=0, ge=0, description="DataLoader worker processes.")


class DistillConfig(BaseModel):
    """Distilling the classifier into a small student on the teacher's frozen soft targets."""

    student_model: str = Field(default="mobilenetv2_100", description="timm model name of the student.")
    pretrained: str = Field(default="", description="timm pretrained tag of the student; empty = random init.")
    pretrained_file: str = Field(default="", description="Local weights file for the student's pretrained tag.")
    image_size: int = Field(default=0, ge=0, le=1024, description="Student input side; 0 = the teacher's.")
    temperature: float = Field(default=4.0, gt=0, description="Softmax temperature of the soft targets (KL term scaled by T²).")
    alpha: float = Field(default=0.7, ge=0, le=1, description="Weight of the soft-target loss; 1 - alpha goes to the hard labels.")
    epochs: int = Field(default=10, ge=1, description="Student training epochs.")
    batch_size: int = Field(default=32, ge=1, description="Images per step.")
    lr: float = Field(default=1e-3, gt=0, description="AdamW learning rate (cosine-annealed).")
    weight_decay: float = Field(default=0.05, ge=0, description="AdamW weight decay.")
    dropout: float = Field(default=0.2, ge=0.0, lt=1.0, description="Dropout before the student's head.")
    max_gap: float = Field(
        default=0.05, ge=0, le=1, description="Largest accepted test-accuracy gap (teacher - student); the result says whether it holds."
    )
    speed_images: int = Field(default=64, ge=1, description="Images timed per model for the CPU images/s figure.")
    speed_batch_size: int = Field(default=16, ge=1, description="Batch size of the CPU speed measurement.")
    seed: int = Field(default=0, description="Seed of initialisation, augmentation and batch order.")
    device: str = Field(default="", description="torch device for training; empty = cuda when available, else cpu. Speed is always CPU.")
    num_workers: int = Field(default=0, ge=0, description="DataLoader worker processes.")
