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
        default="", description="Folder-per-class dataset (absolute, or relative to the data root); empty = render procedural characters."
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
    speed_repeats: int = Field(
        default=3, ge=1, description="Timed rounds per model; the fastest counts (the least disturbed by other work on the CPU)."
    )
    seed: int = Field(default=0, description="Seed of initialisation, augmentation and batch order.")
    device: str = Field(default="", description="torch device for training; empty = cuda when available, else cpu. Speed is always CPU.")
    num_workers: int = Field(default=0, ge=0, description="DataLoader worker processes.")


class PrototypeConfig(BaseModel):
    """Prototype-based recognition on the frozen classifier's features (seed 002 §3.2): new classes without a gradient step."""

    target_false_accept: float = Field(
        default=0.05, gt=0, lt=1,
        description="Share of images of characters outside the prototype set that may still be accepted as one of its classes; "
        "the unknown threshold is the lowest cosine similarity that keeps calibration unknowns at or under it.",
    )
    shots: int = Field(default=5, ge=1, description="Images per new character imprinted with add_class in the evaluation.")
    calibration_characters: int = Field(default=6, ge=1, description="Characters outside training rendered to calibrate the threshold.")
    novel_characters: int = Field(default=4, ge=1, description="Characters outside training imprinted with add_class in the evaluation.")
    unknown_test_characters: int = Field(
        default=6, ge=1, description="Further characters outside training, never imprinted, that should come back unknown."
    )
    images_per_character: int = Field(default=20, ge=2, description="Renders per character outside training (shots + queries).")
    batch_size: int = Field(default=64, ge=1, description="Images per feature forward.")
    device: str = Field(default="", description="torch device; empty means cuda when available, else cpu.")
    seed: int = Field(default=0, description="Seed of the renders of unseen characters and of the shot selection.")


class FusionConfig(BaseModel):
    """Late fusion of frozen image features and a text embedding of a description, with a learned gate (seed 002 §3.3)."""

    text_encoder: str = Field(
        default="minilm",
        description="minilm: the packaged offline all-MiniLM-L6-v2; anything else: a transformers encoder name or folder "
        "(mean-pooled last hidden states).",
    )
    degrade: bool = Field(
        default=True,
        description="Grey-scale and blur the images before the frozen classifier sees them, so colour (hair, eyes, outfit) is left "
        "to the description: the split on which the text carries information.",
    )
    blur_radius: float = Field(default=1.5, ge=0, description="Gaussian blur radius of degraded images, in pixels of the classifier input.")
    mentioned_attributes: int = Field(
        default=2, ge=1, description="Attributes of the character each image's description mentions (a random subset, per image)."
    )
    fresh_images_per_character: int = Field(
        default=0, ge=0,
        description="0: compare on the classifier's own split. n > 0: render n new images of every training character (a new "
        "image seed, so none was seen in training) and split them 60/20/20 into train/val/test for the comparison.",
    )
    hidden_dim: int = Field(default=64, ge=1, description="Hidden units of the gate.")
    dropout: float = Field(default=0.1, ge=0, lt=1, description="Dropout on the features before each head.")
    aux_weight: float = Field(default=0.5, ge=0, description="Weight of each head's own cross-entropy next to the fused loss.")
    learning_rate: float = Field(default=3e-3, gt=0, description="AdamW learning rate (fusion and the image-only baseline alike).")
    weight_decay: float = Field(default=1e-4, ge=0, description="AdamW weight decay.")
    epochs: int = Field(default=150, ge=1, description="Full-batch epochs (fusion and the image-only baseline alike).")
    batch_size: int = Field(default=64, ge=1, description="Images per feature forward.")
    device: str = Field(default="", description="torch device; empty means cuda when available, else cpu.")
    seed: int = Field(default=0, description="Seed of the descriptions, the initialisation and the batch order.")


class GeneratorConfig(BaseModel):
    """The classifier-guided generator (seed 002 §2): Upsample + Conv2d, a discriminator, the frozen classifier as examiner."""

    image_size: int = Field(default=224, ge=8, description="Generated image side; a multiple of 4 (nearest-neighbour upsampling by 2).")
    noise_dim: int = Field(default=128, ge=1, description="Length of the noise vector.")
    class_embedding_dim: int = Field(default=64, ge=1, description="Length of the learned target-class embedding.")
    base_channels: int = Field(default=256, ge=4, description="Channels of the generator's first feature map (halved per upsampling).")
    disc_channels: int = Field(default=32, ge=4, description="Channels of the discriminator's first layer (doubled per downsampling).")
    target_classes: str = Field(
        default="", description="Comma-separated character names to generate; empty means every class of the classifier."
    )
    epochs: int = Field(default=30, ge=1, description="Epochs over the real images of the target classes.")
    batch_size: int = Field(default=16, ge=1, description="Real and generated images per step.")
    learning_rate: float = Field(default=2e-4, gt=0, description="Adam learning rate of generator and discriminator.")
    adv_weight: float = Field(default=0.1, ge=0, description="Weight of the adversarial term of the generator loss.")
    cls_weight: float = Field(default=0.2, ge=0, description="Weight of the examiner's cross-entropy on the target class.")
    perc_weight: float = Field(default=10.0, ge=0, description="Weight of the perceptual term (feature distance to real images).")
    perceptual: str = Field(
        default="auto", pattern="^(auto|vgg16|classifier)$",
        description="auto: VGG16 when its ImageNet weights are in the local torch hub cache, else the frozen classifier's "
        "intermediate features; the run records which.",
    )
    samples_per_class: int = Field(default=4, ge=1, description="Samples per target class in each epoch's grid and confidence.")
    max_grid_classes: int = Field(default=8, ge=1, description="Target classes shown in the sample grids.")
    device: str = Field(default="", description="torch device; empty means cuda when available, else cpu.")
    seed: int = Field(default=0, description="Seed of the initialisation, the noise and the batch order.")
