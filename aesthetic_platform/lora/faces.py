"""Offline faces: detection, a face descriptor for same-shoot comparison, SSIM, optional body pose.

Detection uses OpenCV's Haar frontal-face cascade (shipped in ``cv2.data.haarcascades``) and
MediaPipe's face detector instead when ``mediapipe`` is importable. Nothing is downloaded.

The face **descriptor** (``DescriptorEmbedder``, model id ``hog64-v1``) is what the
same-shoot stage calls an embedding when no face-recognition model is on disk: the face
box is squared around its centre and widened by ``FACE_MARGIN``, cut out in grey, resized
to 64x64, histogram-equalised, and described by a HOG (9 orientations, 8x8-pixel cells,
2x2-cell blocks, L2-Hys: 1,764 values), which is then mean-centred and L2-normalised so the
cosine of two descriptors lies in [-1, 1] and unrelated faces score near 0. It measures how
alike two face *pictures* are (pose, expression, lighting, framing), not who the person is,
which is exactly the question a same-shoot dedup asks. When InsightFace and its model files
are already on disk (``face_embedder("insightface")``), its recognition embedding is used.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
from skimage.feature import hog
from skimage.metrics import structural_similarity

Box = tuple[int, int, int, int]

#: Side of the grey face patch the descriptor and SSIM are computed on.
FACE_SIZE = 64
#: The face box is widened by this share of its side on each side before cutting the patch.
FACE_MARGIN = 0.1
HAAR_CASCADE = "haarcascade_frontalface_default.xml"
EYE_CASCADE = "haarcascade_eye.xml"
DESCRIPTOR_ID = "hog64-v1"


@dataclass(frozen=True)
class Face:
    box: Box  # left, top, right, bottom in pixels of the image it was found in
    score: float

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]

    @property
    def area(self) -> int:
        return self.width * self.height

    def scaled(self, factor: float) -> Face:
        return Face(tuple(round(v * factor) for v in self.box), self.score)  # type: ignore[arg-type]


class FaceDetector(Protocol):
    name: str

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Faces in an RGB uint8 array, largest first."""
        ...


def _cascade(name: str) -> cv2.CascadeClassifier:
    path = Path(cv2.data.haarcascades) / name  # type: ignore[attr-defined]
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise RuntimeError(f"OpenCV Haar cascade missing or unreadable: {path}")
    return cascade


class HaarFaceDetector:
    """OpenCV's Viola-Jones frontal-face cascade on the equalised grey image.

    The face cascade alone fires on textures (coins, gravel, cells); with ``require_eyes``
    a candidate is kept only when the eye cascade finds an eye in the upper 60 % of its box.
    Detection runs with the long side resized to ``detect_side``: down, because the cascade's
    cost grows with the pixel count and faces under 5 % of the short side are not looked for
    anyway; up, because the eye cascade needs a face of some 100 px to find an eye; the
    score is the box area at that size (the cascade gives no calibrated confidence).
    """

    name = "haar-frontalface-default+eyes"

    def __init__(
        self,
        min_face_share: float = 0.05,
        min_neighbors: int = 6,
        scale_factor: float = 1.1,
        require_eyes: bool = True,
        detect_side: int = 512,
    ) -> None:
        self.cascade = _cascade(HAAR_CASCADE)
        self.detect_side = detect_side
        self.eyes = _cascade(EYE_CASCADE) if require_eyes else None
        self.min_face_share, self.min_neighbors, self.scale_factor = min_face_share, min_neighbors, scale_factor

    def _has_eye(self, grey: np.ndarray, box: Box) -> bool:
        if self.eyes is None:
            return True
        left, top, right, bottom = box
        roi = grey[top : top + int(0.6 * (bottom - top)), left:right]
        side = max(5, (right - left) // 8)
        return len(self.eyes.detectMultiScale(roi, scaleFactor=1.1, minNeighbors=3, minSize=(side, side))) > 0

    def detect(self, rgb: np.ndarray) -> list[Face]:
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        scale = self.detect_side / max(grey.shape[:2])
        if scale != 1:
            size = (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale)))
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        grey = cv2.equalizeHist(grey)
        side = max(24, round(min(grey.shape[:2]) * self.min_face_share))
        boxes = self.cascade.detectMultiScale(grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(side, side))
        faces = [Face((int(x), int(y), int(x + w), int(y + h)), float(w * h)) for (x, y, w, h) in boxes]
        faces = [face.scaled(1 / scale) for face in faces if self._has_eye(grey, face.box)]
        return sorted(faces, key=lambda f: (-f.area, -f.score))


class MediaPipeFaceDetector:
    """MediaPipe's BlazeFace full-range detector (only when ``mediapipe`` is installed)."""

    name = "mediapipe-face-detection"

    def __init__(self, min_confidence: float = 0.5) -> None:
        mp = importlib.import_module("mediapipe")
        self.model = mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=min_confidence)

    def detect(self, rgb: np.ndarray) -> list[Face]:
        height, width = rgb.shape[:2]
        result = self.model.process(np.ascontiguousarray(rgb))
        faces = []
        for detection in result.detections or []:
            rel = detection.location_data.relative_bounding_box
            left, top = max(0, round(rel.xmin * width)), max(0, round(rel.ymin * height))
            right, bottom = min(width, round((rel.xmin + rel.width) * width)), min(height, round((rel.ymin + rel.height) * height))
            if right > left and bottom > top:
                faces.append(Face((left, top, right, bottom), float(detection.score[0])))
        return sorted(faces, key=lambda f: (-f.area, -f.score))


def mediapipe_available() -> bool:
    return importlib.util.find_spec("mediapipe") is not None


def default_detector() -> FaceDetector:
    """MediaPipe when installed, else the Haar cascade."""
    if mediapipe_available():
        return MediaPipeFaceDetector()
    return HaarFaceDetector()


def square_box(box: Box, margin: float, width: int, height: int) -> Box:
    """The box squared on its centre and widened by ``margin`` of its side per side, clipped to the image."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half = max(box[2] - box[0], box[3] - box[1]) * (0.5 + margin)
    left, top = max(0, round(cx - half)), max(0, round(cy - half))
    return left, top, min(width, max(left + 1, round(cx + half))), min(height, max(top + 1, round(cy + half)))


def face_patch(rgb: np.ndarray, box: Box, mirror: bool = False) -> np.ndarray:
    """The aligned grey face patch (FACE_SIZE², float 0..1, equalised); ``mirror`` flips it left-right."""
    height, width = rgb.shape[:2]
    left, top, right, bottom = square_box(box, FACE_MARGIN, width, height)
    grey = cv2.cvtColor(np.ascontiguousarray(rgb[top:bottom, left:right]), cv2.COLOR_RGB2GRAY)
    patch = cv2.equalizeHist(cv2.resize(grey, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA))
    if mirror:
        patch = patch[:, ::-1]
    return np.ascontiguousarray(patch, dtype=np.float32) / 255.0


class FaceEmbedder(Protocol):
    name: str

    def embed(self, rgb: np.ndarray, face: Face, mirror: bool = False) -> np.ndarray:
        """A unit vector for the face; cosine of two is their similarity."""
        ...


class DescriptorEmbedder:
    """The built-in HOG descriptor of the aligned face patch (see the module docstring)."""

    name = DESCRIPTOR_ID

    def embed(self, rgb: np.ndarray, face: Face, mirror: bool = False) -> np.ndarray:
        return descriptor(face_patch(rgb, face.box, mirror))


def descriptor(patch: np.ndarray) -> np.ndarray:
    feature = hog(patch, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2), block_norm="L2-Hys", feature_vector=True)
    feature = np.asarray(feature, dtype=np.float64)
    feature -= feature.mean()
    norm = float(np.linalg.norm(feature))
    return (feature / norm if norm > 0 else feature).astype(np.float32)


class InsightFaceEmbedder:
    """InsightFace's recognition embedding; used only when its model pack is already on disk."""

    def __init__(self, root: Path, pack: str = "buffalo_l") -> None:
        analysis = importlib.import_module("insightface.app")
        self.name = f"insightface-{pack}"
        self.app: Any = analysis.FaceAnalysis(name=pack, root=str(root), allowed_modules=["detection", "recognition"])
        self.app.prepare(ctx_id=-1, det_size=(640, 640))

    def embed(self, rgb: np.ndarray, face: Face, mirror: bool = False) -> np.ndarray:
        height, width = rgb.shape[:2]
        left, top, right, bottom = square_box(face.box, 0.5, width, height)
        crop = np.ascontiguousarray(rgb[top:bottom, left:right, ::-1])
        if mirror:
            crop = np.ascontiguousarray(crop[:, ::-1])
        found = self.app.get(crop)
        if not found:  # the recognition model needs its own detection; fall back to the descriptor for this face
            return DescriptorEmbedder().embed(rgb, face, mirror)
        best = max(found, key=lambda f: float((f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1])))
        return np.asarray(best.normed_embedding, dtype=np.float32)


def insightface_models(root: str = "", pack: str = "buffalo_l") -> Path | None:
    """The InsightFace root holding ``models/<pack>/*.onnx``, or None (never downloaded)."""
    base = Path(root).expanduser() if root else Path.home() / ".insightface"
    if importlib.util.find_spec("insightface") is None:
        return None
    folder = base / "models" / pack
    return base if folder.is_dir() and any(folder.glob("*.onnx")) else None


def face_embedder(kind: str = "auto", insightface_root: str = "") -> FaceEmbedder:
    """``descriptor``, ``insightface`` (its files must be on disk, else ValueError) or ``auto``."""
    if kind == "descriptor":
        return DescriptorEmbedder()
    root = insightface_models(insightface_root)
    if root is not None:
        return InsightFaceEmbedder(root)
    if kind == "insightface":
        raise ValueError(
            f"face_embedder 'insightface' needs the insightface package and models/buffalo_l/*.onnx under "
            f"{insightface_root or '~/.insightface'}; they are never downloaded"
        )
    return DescriptorEmbedder()


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / max(1e-12, float(np.linalg.norm(a) * np.linalg.norm(b))))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity of two face patches (float 0..1)."""
    return float(structural_similarity(a, b, data_range=1.0))


class PoseEstimator:
    """MediaPipe Pose landmarks (33 points, image-normalised); only when ``mediapipe`` is installed."""

    name = "mediapipe-pose"

    def __init__(self) -> None:
        mp = importlib.import_module("mediapipe")
        self.model = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1)

    def landmarks(self, rgb: np.ndarray) -> np.ndarray | None:
        """(33, 3) array of x, y, visibility, or None when no body is found."""
        result = self.model.process(np.ascontiguousarray(rgb))
        if result.pose_landmarks is None:
            return None
        return np.array([(p.x, p.y, p.visibility) for p in result.pose_landmarks.landmark], dtype=np.float32)


def pose_estimator() -> PoseEstimator | None:
    return PoseEstimator() if mediapipe_available() else None


def pose_similarity(a: np.ndarray, b: np.ndarray, min_visibility: float = 0.5) -> float:
    """Cosine of the two poses' visible landmarks, each centred and scaled to unit size (1 = same pose)."""
    visible = (a[:, 2] >= min_visibility) & (b[:, 2] >= min_visibility)
    if visible.sum() < 4:
        return 0.0
    pa, pb = a[visible, :2].astype(np.float64), b[visible, :2].astype(np.float64)
    pa -= pa.mean(axis=0)
    pb -= pb.mean(axis=0)
    return max(0.0, cosine(pa.ravel(), pb.ravel()))
