"""The backbone seam: the one interface generative tools call, and how one is chosen.

Experts (``replace``, prompt-driven ``replace_background``) and the ``refine``
tool call :func:`get_backbone` rather than importing ``backbone/``, so the
arrows keep pointing one way. Implementations register under the entry-point
group ``banana.backbones``; :class:`BackboneConfig` picks one (default: the
classical no-weights fallback, which says so in every result's metadata).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from banana.tools.values import Image, Mask

ENTRY_POINT_GROUP = "banana.backbones"
Progress = Callable[[float, str], None]  # (fraction done, message); ToolContext.progress fits
Operation = Literal["refine", "inpaint", "edit"]


_ENV_NAMES = {  # field -> the variable that sets it, for error messages
    "kind": "BANANA_BACKBONE", "pipeline": "BANANA_BACKBONE_PIPELINE", "weights": "BANANA_BACKBONE_WEIGHTS",
    "device": "BANANA_DEVICE", "dtype": "BANANA_DTYPE", "offload": "BANANA_OFFLOAD", "steps": "BANANA_BACKBONE_STEPS",
    "resolution": "BANANA_BACKBONE_RESOLUTION", "guidance": "BANANA_BACKBONE_GUIDANCE", "adapters": "BANANA_BACKBONE_ADAPTERS",
    "controlnet": "BANANA_BACKBONE_CONTROLNET", "controlnet_scale": "BANANA_BACKBONE_CONTROLNET_SCALE",
}


class BackboneConfig(BaseModel):
    """Which backbone to use and how. From code, or the ``BANANA_BACKBONE*`` environment variables."""

    kind: str = Field(default="classical", description="entry-point name in banana.backbones")
    pipeline: str | None = Field(default=None, description="e.g. sd-inpaint, sdxl-inpaint, flux-kontext, instruct-pix2pix")
    weights: Path | str | None = Field(default=None, description="a local folder, or a hub id only when the user sets one")
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    offload: Literal["none", "model", "sequential"] = "none"
    steps: int = Field(default=28, ge=1, le=200)
    resolution: int | None = Field(default=None, ge=64, le=4096, description="longest side the pipeline works at; None: its native size")
    guidance: float | None = Field(default=None, ge=0, le=30, description="classifier-free guidance scale; None: the pipeline's default")
    adapters: dict[str, Path] = Field(default_factory=dict, description="LoRA expert name -> local weights file")
    controlnet: Path | str | None = Field(default=None, description="a Canny ControlNet (folder or hub id) for sdxl-inpaint refines")
    controlnet_scale: float = Field(default=0.5, ge=0, le=2, description="how strongly the ControlNet holds the edges")

    @classmethod
    def from_env(cls) -> BackboneConfig:
        env: dict[str, Any] = {
            "kind": os.environ.get("BANANA_BACKBONE"),
            "pipeline": os.environ.get("BANANA_BACKBONE_PIPELINE"),
            "weights": os.environ.get("BANANA_BACKBONE_WEIGHTS"),
            "device": os.environ.get("BANANA_DEVICE"),
            "dtype": os.environ.get("BANANA_DTYPE"),
            "offload": os.environ.get("BANANA_OFFLOAD"),
            "steps": os.environ.get("BANANA_BACKBONE_STEPS"),
            "resolution": os.environ.get("BANANA_BACKBONE_RESOLUTION"),
            "guidance": os.environ.get("BANANA_BACKBONE_GUIDANCE"),
            "controlnet": os.environ.get("BANANA_BACKBONE_CONTROLNET"),
            "controlnet_scale": os.environ.get("BANANA_BACKBONE_CONTROLNET_SCALE"),
        }
        if env["weights"] and not env["kind"]:
            env["kind"] = "diffusers"  # naming weights is enough to ask for them
        adapters = os.environ.get("BANANA_BACKBONE_ADAPTERS", "")  # "identity=/w/id.safetensors,style=/w/s.safetensors"
        if adapters.strip():
            pairs = [item.partition("=") for item in adapters.split(",") if item.strip()]
            if any(not sep or not name.strip() for name, sep, _ in pairs):
                raise BackboneError(f"BANANA_BACKBONE_ADAPTERS={adapters!r}: expected name=path pairs separated by commas")
            env["adapters"] = {name.strip(): path.strip() for name, _, path in pairs}
        try:
            return cls(**{k: v for k, v in env.items() if v})
        except ValidationError as exc:
            raise BackboneError("; ".join(f"{_ENV_NAMES.get(str(e['loc'][0]), e['loc'][0])}={e.get('input')!r}: {e['msg']}"
                                          for e in exc.errors())) from None


class BackboneMeta(BaseModel):
    """What every backbone result records in ``Image.meta`` (as flat keys), so people and later tools see what really ran.

    ``generative`` is False for the classical fallback: it cannot invent content from a prompt, and says so in ``note``.
    """

    backbone: str = Field(description="what really ran: 'classical' or 'diffusers'")
    generative: bool
    operation: Operation
    note: str = Field(description="one line for people, e.g. 'classical fallback (no diffusion weights configured)'")
    pipeline: str | None = None
    weights: str | None = None
    seed: int | None = None
    adapters: dict[str, Any] = Field(default_factory=dict)

    def stamp(self, pixels: np.ndarray, source: Image) -> Image:
        """The result picture: ``source``'s metadata, updated with this record."""
        return Image(pixels, meta={**source.meta, **self.model_dump(exclude_none=True)})

    @classmethod
    def read(cls, meta: Mapping[str, Any]) -> BackboneMeta | None:
        """The record in a picture's metadata, or None when there is no complete one."""
        try:
            return cls.model_validate({k: meta[k] for k in cls.model_fields if k in meta})
        except ValidationError:
            return None


@runtime_checkable
class Backbone(Protocol):
    """What every backbone offers. Results carry a :class:`BackboneMeta` record naming what really ran.

    Guarantees every implementation keeps: the result has the input's size; pixels where ``keep_mask``
    is 1 are bit-identical to the input (fractional values blend); ``inpaint`` leaves pixels where
    ``mask`` is 0 bit-identical; the same seed gives the same picture; ``edit`` raises
    :class:`BackboneError` when it cannot follow an instruction rather than returning a look-alike.
    ``adapters`` maps LoRA expert names to weights (0 = off). ``progress(fraction, message)`` is called
    as the work advances (per denoising step); an exception it raises (a cancelled tool's) stops the call.
    """

    name: str
    generative: bool  # False for the classical fallback: it cannot invent content from a prompt

    def refine(
        self,
        image: Image,
        prompt: str = "",
        strength: float = 0.3,
        keep_mask: Mask | None = None,
        seed: int = 0,
        adapters: dict[str, float] | None = None,
        progress: Progress | None = None,
    ) -> Image: ...

    def inpaint(self, image: Image, mask: Mask, prompt: str = "", seed: int = 0, progress: Progress | None = None) -> Image: ...

    def edit(
        self, image: Image, instruction: str, seed: int = 0, keep_mask: Mask | None = None, progress: Progress | None = None
    ) -> Image: ...


class BackboneError(RuntimeError):
    pass


_lock = threading.Lock()
_current: Backbone | None = None
_current_key: str | None = None  # what the current backbone was built from (see fingerprint)


def load_backbone(config: BackboneConfig) -> Backbone:
    """Build the backbone ``config.kind`` names, from the ``banana.backbones`` entry points."""
    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    if config.kind not in found:
        raise BackboneError(f"unknown backbone {config.kind!r}; installed: {', '.join(sorted(found)) or 'none'}")
    factory: Any = found[config.kind].load()
    return factory(config)


def get_backbone() -> Backbone:
    """The process's backbone (built on first use from the environment's config)."""
    global _current, _current_key
    with _lock:
        if _current is None:
            config = BackboneConfig.from_env()
            _current, _current_key = load_backbone(config), config_identity(config)
        return _current


def set_backbone(backbone: Backbone | None) -> None:
    """Install a backbone for this process (None: rebuild from config on next use)."""
    global _current, _current_key
    with _lock:
        _current = backbone
        _current_key = None if backbone is None else backbone_identity(backbone)


def fingerprint() -> str:
    """What backbone results depend on, without loading one: a cache-key salt for tools that call it."""
    with _lock:
        if _current_key is not None:
            return _current_key
    return config_identity(BackboneConfig.from_env())


MAX_WEIGHT_FILES = 10_000  # a weights folder is a few dozen files; stop walking a mistaken one (a home folder) here
_PROCESS_TOKEN = os.urandom(8).hex()
_installs = itertools.count()


def weights_identity(location: Path | str | None) -> str:
    """What a weights location holds, without reading the weights: each file's relative path, size and mtime.

    A hub id (``hf:org/name``) or a missing path is identified by its text only. Symlinks are followed
    (a hub snapshot links to its blobs), so replacing a file's content in place changes the identity.
    """
    if location is None:
        return "-"
    path = Path(str(location)).expanduser()
    if not path.exists():
        return f"name:{location}"
    h = hashlib.blake2b(digest_size=16)
    files = [path] if path.is_file() else []
    if path.is_dir():
        for root, dirs, names in os.walk(path, followlinks=True):
            dirs.sort()
            files.extend(Path(root) / n for n in sorted(names))
            if len(files) > MAX_WEIGHT_FILES:
                break
    for f in files[:MAX_WEIGHT_FILES]:
        try:
            st = f.stat()
        except OSError:  # a dangling link
            h.update(f"{f.relative_to(path) if f != path else f.name}|missing".encode())
            continue
        h.update(f"{f.relative_to(path) if f != path else f.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return f"files:{h.hexdigest()}:{len(files)}"


def config_identity(config: BackboneConfig) -> str:
    """A backbone config plus the identity of every weights location it names: the same in every process."""
    parts = [config.model_dump_json(), f"weights={weights_identity(config.weights)}", f"controlnet={weights_identity(config.controlnet)}"]
    parts += [f"adapter:{name}={weights_identity(path)}" for name, path in sorted(config.adapters.items())]
    return "|".join(parts)


def backbone_identity(backbone: Backbone) -> str:
    """What an installed backbone's results depend on: its config's identity when it has one.

    A backbone without a :class:`BackboneConfig` (a custom object) gets a key of its own that no other
    install, in this process or another, shares: its results are never served to a different backbone.
    """
    config = getattr(backbone, "config", None)
    if isinstance(config, BackboneConfig):
        return config_identity(config)
    return f"{type(backbone).__module__}.{type(backbone).__qualname__}|unshared:{_PROCESS_TOKEN}:{next(_installs)}"
