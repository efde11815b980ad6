"""Values that flow on the edges of a program.

Each value type has a stable ``type_name`` (what the planner's schema and the
validator talk about), a content hash (what the executor's cache keys on) and a
file form (PNG for pixels, JSON for the rest) so results can be saved and reloaded.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo

from banana.tools.pictures import PictureError as PictureError  # re-exported: what Image.load raises
from banana.tools.pictures import decode

META_KEY = "banana:meta"


class Value:
    """Base class of everything a tool takes as a port or returns."""

    type_name: ClassVar[str] = "Value"
    suffix: ClassVar[str] = ".json"

    def _digest_bytes(self) -> bytes:
        raise NotImplementedError

    @property
    def content_hash(self) -> str:
        cached = self.__dict__.get("_hash")
        if cached is None:
            h = hashlib.blake2b(self.type_name.encode(), digest_size=16)
            h.update(self._digest_bytes())
            cached = h.hexdigest()
            object.__setattr__(self, "_hash", cached)
        return cached

    @property
    def nbytes(self) -> int:
        return len(self._digest_bytes())

    def save(self, path: str | Path) -> Path:
        raise NotImplementedError

    @classmethod
    def load(cls, path: str | Path) -> Value:
        raise NotImplementedError


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True, eq=False)
class Image(Value):
    """An RGB picture: ``pixels`` is an H x W x 3 uint8 array."""

    pixels: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    type_name: ClassVar[str] = "Image"
    suffix: ClassVar[str] = ".png"

    def __post_init__(self) -> None:
        px = np.asarray(self.pixels)
        if px.ndim == 2:
            px = np.repeat(px[:, :, None], 3, axis=2)
        if px.ndim != 3 or px.shape[2] not in (3, 4):
            raise ValueError(f"Image needs an H x W x 3 array, got shape {px.shape}")
        if px.shape[2] == 4:
            px = px[:, :, :3]
        if px.dtype != np.uint8:
            raise ValueError(f"Image needs uint8 pixels, got {px.dtype}")
        px = np.ascontiguousarray(px)
        px.setflags(write=False)
        object.__setattr__(self, "pixels", px)

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    def _digest_bytes(self) -> bytes:
        return np.asarray(self.pixels.shape, dtype=np.int64).tobytes() + self.pixels.tobytes()

    @property
    def nbytes(self) -> int:
        return int(self.pixels.nbytes)

    def save(self, path: str | Path) -> Path:
        """PNG (or what the suffix says); ``meta`` travels in a PNG text chunk."""
        path = Path(path)
        info = None
        if self.meta and path.suffix.lower() == ".png":
            info = PngInfo()
            info.add_text(META_KEY, json.dumps(self.meta, default=str))
        PILImage.fromarray(self.pixels).save(path, pnginfo=info)
        return path

    @classmethod
    def load(cls, path: str | Path, *, max_pixels: int | None = None, max_side: int | None = None) -> Image:
        """Read a picture file: size limits checked before decoding, EXIF upright, alpha over white,
        8-bit RGB (see :mod:`banana.tools.pictures`); :class:`PictureError` names the file when it cannot be used."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no image at {path}")
        with path.open("rb") as f:
            pixels, meta = decode(f, str(path), META_KEY, max_pixels, max_side)
        return cls(pixels, meta=meta)

    @classmethod
    def decode(cls, data: bytes, name: str, *, max_pixels: int | None = None, max_side: int | None = None) -> Image:
        """The same as :meth:`load`, for a file's bytes (``name`` is what errors call it)."""
        pixels, meta = decode(data, name, META_KEY, max_pixels, max_side)
        return cls(pixels, meta=meta)


@dataclass(frozen=True, eq=False)
class Mask(Value):
    """A soft selection: ``alpha`` is an H x W float32 array in [0, 1]."""

    alpha: np.ndarray

    type_name: ClassVar[str] = "Mask"
    suffix: ClassVar[str] = ".npz"  # the exact file form (float32, compressed, CRC-checked); .png for people

    def __post_init__(self) -> None:
        a = np.asarray(self.alpha)
        if a.ndim != 2:
            raise ValueError(f"Mask needs an H x W array, got shape {a.shape}")
        if a.dtype == bool:
            a = a.astype(np.float32)
        elif a.dtype == np.uint8:
            a = a.astype(np.float32) / 255.0
        else:
            a = np.clip(a.astype(np.float32), 0.0, 1.0)
        a = np.ascontiguousarray(a)
        a.setflags(write=False)
        object.__setattr__(self, "alpha", a)

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.alpha.shape[0]), int(self.alpha.shape[1]))

    @property
    def area(self) -> float:
        """Fraction of the picture that is selected."""
        return float(self.alpha.mean())

    def binary(self, threshold: float = 0.5) -> np.ndarray:
        return self.alpha >= threshold

    def _digest_bytes(self) -> bytes:
        return np.asarray(self.alpha.shape, dtype=np.int64).tobytes() + self.alpha.tobytes()

    @property
    def nbytes(self) -> int:
        return int(self.alpha.nbytes)

    def save(self, path: str | Path) -> Path:
        """``.npz``: the float32 alpha exactly (the cache's form); any picture suffix: 16-bit grey, for people."""
        path = Path(path)
        if path.suffix.lower() == ".npz":
            with path.open("wb") as f:  # a file object: numpy would append .npz to a name without it
                np.savez_compressed(f, alpha=self.alpha)
            return path
        # 16-bit grey keeps soft edges without visible banding (within 1/131070 of the float mask).
        PILImage.fromarray(np.round(self.alpha * 65535).astype(np.uint16)).save(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Mask:
        """Reads what :meth:`save` writes; a truncated or damaged ``.npz`` raises (zip CRC), never loads wrong values."""
        path = Path(path)
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                if list(npz.files) != ["alpha"]:
                    raise ValueError(f"{path}: a mask file holds one array 'alpha', found {npz.files}")
                arr = npz["alpha"]
            if arr.dtype != np.float32 or arr.ndim != 2 or not np.all((arr >= 0) & (arr <= 1)):
                raise ValueError(f"{path}: a mask is an H x W float32 array in [0, 1], found {arr.dtype} {arr.shape}")
            return cls(arr)
        with PILImage.open(path) as im:
            arr = np.asarray(im)
        if arr.ndim == 3:
            arr = arr[:, :, 0]
        if arr.dtype == np.uint16 or arr.dtype == np.int32:
            return cls(arr.astype(np.float32) / 65535.0)
        return cls(arr.astype(np.float32) / 255.0)


@dataclass(frozen=True, eq=False)
class Boxes(Value):
    """Axis-aligned boxes in pixels: ``[x0, y0, x1, y1]`` with a score and a label each."""

    boxes: tuple[tuple[float, float, float, float], ...]
    scores: tuple[float, ...] = ()
    labels: tuple[str, ...] = ()
    image_size: tuple[int, int] | None = None  # (height, width) of the picture they belong to

    type_name: ClassVar[str] = "Boxes"

    def __post_init__(self) -> None:
        boxes = tuple(tuple(float(v) for v in b) for b in self.boxes)
        for b in boxes:
            if len(b) != 4 or b[2] < b[0] or b[3] < b[1]:
                raise ValueError(f"a box is [x0, y0, x1, y1] with x0 <= x1 and y0 <= y1, got {list(b)}")
        scores = tuple(float(s) for s in self.scores) or tuple(1.0 for _ in boxes)
        labels = tuple(str(s) for s in self.labels) or tuple("" for _ in boxes)
        if not (len(scores) == len(labels) == len(boxes)):
            raise ValueError("Boxes needs as many scores and labels as boxes")
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "labels", labels)

    def __len__(self) -> int:
        return len(self.boxes)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type_name,
            "boxes": [list(b) for b in self.boxes],
            "scores": list(self.scores),
            "labels": list(self.labels),
            "image_size": list(self.image_size) if self.image_size else None,
        }

    def _digest_bytes(self) -> bytes:
        return _json_bytes(self.to_json())

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_json(), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Boxes:
        d = json.loads(Path(path).read_text())
        size = tuple(d["image_size"]) if d.get("image_size") else None
        return cls(tuple(tuple(b) for b in d["boxes"]), tuple(d["scores"]), tuple(d["labels"]), size)  # type: ignore[arg-type]


@dataclass(frozen=True, eq=False)
class Text(Value):
    text: str
    type_name: ClassVar[str] = "Text"

    def _digest_bytes(self) -> bytes:
        return self.text.encode()

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps({"type": self.type_name, "text": self.text}))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Text:
        return cls(json.loads(Path(path).read_text())["text"])


@dataclass(frozen=True, eq=False)
class Number(Value):
    value: float
    type_name: ClassVar[str] = "Number"

    def _digest_bytes(self) -> bytes:
        return repr(float(self.value)).encode()

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps({"type": self.type_name, "value": self.value}))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Number:
        return cls(float(json.loads(Path(path).read_text())["value"]))


@dataclass(frozen=True, eq=False)
class Face:
    """One locked face: where it was, its landmarks, its embedding and its pixels."""

    box: tuple[int, int, int, int]
    embedding: tuple[float, ...]
    landmarks: tuple[tuple[float, float], ...] = ()
    crop: np.ndarray | None = None

    def to_json(self) -> dict[str, Any]:
        crop = None
        if self.crop is not None:
            buf = io.BytesIO()
            PILImage.fromarray(self.crop).save(buf, format="PNG")
            crop = base64.b64encode(buf.getvalue()).decode()
        return {
            "box": list(self.box),
            "embedding": [round(float(v), 6) for v in self.embedding],
            "landmarks": [list(p) for p in self.landmarks],
            "crop_png": crop,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Face:
        crop = None
        if d.get("crop_png"):
            with PILImage.open(io.BytesIO(base64.b64decode(d["crop_png"]))) as im:
                crop = np.asarray(im.convert("RGB"))
        return cls(
            tuple(int(v) for v in d["box"]),  # type: ignore[arg-type]
            tuple(float(v) for v in d["embedding"]),
            tuple(tuple(p) for p in d.get("landmarks", [])),  # type: ignore[misc]
            crop,
        )


@dataclass(frozen=True, eq=False)
class Identity(Value):
    """The faces of a picture, locked so they can be checked and restored later."""

    faces: tuple[Face, ...]
    image_size: tuple[int, int]  # (height, width)

    type_name: ClassVar[str] = "Identity"

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type_name, "image_size": list(self.image_size), "faces": [f.to_json() for f in self.faces]}

    def _digest_bytes(self) -> bytes:
        return _json_bytes(self.to_json())

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_json()))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Identity:
        d = json.loads(Path(path).read_text())
        return cls(tuple(Face.from_json(f) for f in d["faces"]), tuple(d["image_size"]))  # type: ignore[arg-type]


VALUE_TYPES: dict[str, type[Value]] = {t.type_name: t for t in (Image, Mask, Boxes, Text, Number, Identity)}


def value_type(name: str) -> type[Value]:
    """The value class for a type name, with an error that lists the known ones."""
    try:
        return VALUE_TYPES[name]
    except KeyError:
        raise KeyError(f"unknown value type {name!r}; known: {', '.join(VALUE_TYPES)}") from None
