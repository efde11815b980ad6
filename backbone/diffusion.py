"""The diffusers backbone: SD 1.5 / SDXL inpainting, img2img, FLUX.1 Kontext and InstructPix2Pix behind one interface.

Weights come only from configuration (a local folder, or a hub id the user names);
nothing is downloaded by default. Pipelines load on first use, derived pipelines
share the loaded modules, and every call is seeded, so the same inputs give the
same picture. Pipelines work at their native size (sides a multiple of the latent
factor); results are brought back to full resolution and the keep mask is
re-applied there, bit for bit.
"""

from __future__ import annotations

import logging
import math
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image as PILImage

from banana.backbone.adapters import Adapters, StepCallback, Weight
from banana.backbone.classical import ClassicalBackbone
from banana.backbone.pipelines import PipelineKind, detect_kind, kind_named
from banana.backbone.pixels import alpha_of, blend, keep_exact, resize, to_uint8, working_size
from banana.tools.backbone import BackboneConfig, BackboneError, BackboneMeta, Operation, Progress
from banana.tools.values import Image, Mask

CONTROLNET_KINDS = {"sdxl-inpaint": "StableDiffusionXLControlNetInpaintPipeline"}  # kind -> its ControlNet refiner
INPAINT_MARGIN = 0.5  # inpaint a crop around the mask, this much of its size on each side, at the pipeline's size


class DiffusersBackbone:
    """A diffusers pipeline chosen by :class:`BackboneConfig`; see :mod:`banana.backbone.pipelines` for the kinds."""

    name = "diffusers"
    generative = True

    def __init__(self, config: BackboneConfig) -> None:
        if config.weights is None:
            raise BackboneError(
                "the diffusers backbone needs weights: set BANANA_BACKBONE_WEIGHTS to a local pipeline folder "
                "(or a hub id); without weights Banana runs the labelled classical fallback (BANANA_BACKBONE=classical)"
            )
        self.config = config
        self.source, self.local = resolve_weights(config.weights)
        if config.pipeline:
            self.kind = kind_named(config.pipeline)
        elif self.local:
            self.kind = detect_kind(Path(self.source))
        else:
            raise BackboneError(f"weights {self.source!r} are a hub id: also set BANANA_BACKBONE_PIPELINE "
                                "(sd-inpaint, sd-img2img, sdxl-inpaint, flux-kontext or instruct-pix2pix)")
        self.controlnet = resolve_weights(config.controlnet) if config.controlnet else None
        if self.controlnet and self.kind.name not in CONTROLNET_KINDS:
            raise BackboneError(f"a ControlNet is supported with {', '.join(CONTROLNET_KINDS)} only, not {self.kind.name}")
        self._pipes: dict[str, Any] = {}
        self._adapters: Adapters | None = None
        self._placement = ""
        self._lock = threading.Lock()

    # -- the interface ---------------------------------------------------------------------------------

    def refine(
        self,
        image: Image,
        prompt: str = "",
        strength: float = 0.3,
        keep_mask: Mask | None = None,
        seed: int = 0,
        adapters: dict[str, Weight] | None = None,
        progress: Progress | None = None,
    ) -> Image:
        """Re-render what is not kept at ``strength``; the change is carried back to full resolution."""
        if self.kind.refine is None:
            fallback = ClassicalBackbone(self.config, reason=f"{self.kind.name} weights cannot refine at a strength")
            return fallback.refine(image, prompt, strength, keep_mask, seed, adapters, progress)
        if strength <= 0:
            return self._meta("refine", seed, adapters, "strength 0, picture unchanged").stamp(image.pixels, image)
        h, w = self._size(image.height, image.width)
        small = resize(image.pixels, h, w)
        call: dict[str, Any] = {"image": PILImage.fromarray(small), "strength": strength}
        if self.kind.refine_masked:
            repaint = 1.0 - alpha_of(keep_mask, h, w)
            call.update(mask_image=_mask_image(repaint), height=h, width=w)
        refiner = self.kind.refine
        if self.controlnet:
            refiner = CONTROLNET_KINDS[self.kind.name]
            call.update(control_image=PILImage.fromarray(canny_edges(small)), controlnet_conditioning_scale=self.config.controlnet_scale)
        generated = self._run(refiner, prompt, seed, adapters, call, strength, progress)
        # Carry the change, not the low-resolution picture: untouched detail stays sharp at full size.
        change = resize(generated - small.astype(np.float32), image.height, image.width)
        result = keep_exact(to_uint8(image.pixels.astype(np.float32) + change), image, keep_mask)
        return self._meta("refine", seed, adapters, f"strength {strength:g} at {w}x{h}").stamp(result, image)

    def inpaint(self, image: Image, mask: Mask, prompt: str = "", seed: int = 0, progress: Progress | None = None) -> Image:
        """Repaint the masked region from ``prompt``; pixels outside the mask are bit-identical."""
        if self.kind.inpaint is None:
            fallback = ClassicalBackbone(self.config, reason=f"{self.kind.name} weights cannot inpaint")
            return fallback.inpaint(image, mask, prompt, seed, progress)
        alpha = alpha_of(mask, image.height, image.width)
        if not (alpha > 0).any():
            return self._meta("inpaint", seed, None, "empty mask, picture unchanged").stamp(image.pixels, image)
        y0, y1, x0, x1 = crop_box(alpha > 0, INPAINT_MARGIN, self.kind.multiple)
        crop = image.pixels[y0:y1, x0:x1]
        h, w = self._size(y1 - y0, x1 - x0)
        call = {"image": PILImage.fromarray(resize(crop, h, w)), "mask_image": _mask_image(resize(alpha[y0:y1, x0:x1], h, w)),
                "height": h, "width": w, "strength": 1.0}
        generated = resize(self._run(self.kind.inpaint, prompt, seed, None, call, 1.0, progress), y1 - y0, x1 - x0)
        full = image.pixels.copy()
        full[y0:y1, x0:x1] = to_uint8(generated)
        detail = f"region {x1 - x0}x{y1 - y0} at {w}x{h}"
        return self._meta("inpaint", seed, None, detail).stamp(blend(full, image.pixels, alpha), image)

    def edit(
        self, image: Image, instruction: str, seed: int = 0, keep_mask: Mask | None = None, progress: Progress | None = None
    ) -> Image:
        """Follow an instruction over the whole picture (FLUX.1 Kontext, InstructPix2Pix); kept pixels stay exact."""
        if self.kind.edit is None:
            raise BackboneError(f"edit({instruction!r}): the configured {self.kind.name} weights cannot follow instructions; "
                                "set BANANA_BACKBONE_PIPELINE=flux-kontext or instruct-pix2pix with matching weights")
        h, w = self._size(image.height, image.width)
        call: dict[str, Any] = {"image": PILImage.fromarray(resize(image.pixels, h, w))}
        if self.kind.family == "flux":
            call.update(height=h, width=w)
        generated = resize(self._run(self.kind.edit, instruction, seed, None, call, None, progress), image.height, image.width)
        result = keep_exact(to_uint8(generated), image, keep_mask)
        return self._meta("edit", seed, None, f"at {w}x{h}").stamp(result, image)

    def unload_adapters(self) -> None:
        """Drop the LoRA experts from the loaded pipeline (naming one afterwards is an error)."""
        with self._lock:
            if self._adapters is not None:
                self._adapters.unload(self._pipes[self.kind.load])

    # -- loading and running ---------------------------------------------------------------------------

    def _size(self, height: int, width: int) -> tuple[int, int]:
        return working_size(height, width, self.config.resolution or self.kind.resolution, self.kind.multiple)

    def _meta(self, operation: Operation, seed: int, adapters: dict[str, Weight] | None, detail: str) -> BackboneMeta:
        note = f"diffusers {self.kind.name} from {self.source}, seed {seed}, {detail}"
        if adapters:
            note += ", LoRA " + ", ".join(f"{n}={w}" for n, w in sorted(adapters.items()))
        if self.controlnet and operation == "refine":
            note += f", Canny ControlNet {self.controlnet[0]} at {self.config.controlnet_scale:g}"
        if self._placement:
            note += f" ({self._placement})"
        return BackboneMeta(backbone=self.name, generative=True, operation=operation, note=note,
                            pipeline=self.kind.name, weights=self.source, seed=seed, adapters=dict(adapters or {}))

    def _out_of_memory(self) -> BackboneError:
        return BackboneError(f"the {self.kind.name} pipeline ran out of GPU memory (it needs {self.kind.memory}); try "
                             "BANANA_OFFLOAD=model (or sequential), a smaller BANANA_BACKBONE_RESOLUTION, or half precision")

    def _pipeline(self, class_name: str) -> Any:
        if not self._pipes:
            self._load()
        return self._pipes[class_name]

    def _load(self) -> None:
        import diffusers
        import torch
        import transformers

        device = resolve_device(self.config.device)
        dtype = getattr(torch, resolve_dtype(self.config.dtype, device, self.kind))
        diffusers.utils.logging.disable_progress_bar()  # loading bars would tear through the CLI's own progress display
        transformers.utils.logging.disable_progress_bar()
        logging.getLogger("diffusers.models.modeling_utils").addFilter(_no_empty_fp32_warning)
        loader = getattr(diffusers, self.kind.load)
        try:
            base = loader.from_pretrained(self.source, dtype=dtype, local_files_only=self.local)
        except Exception as exc:
            raise BackboneError(f"could not load {self.kind.name} weights ({self.kind.load}) from {self.source}: {exc}") from exc
        self._adapters = Adapters(base, self.config.adapters)
        pipes = {self.kind.load: base}
        for name in {self.kind.refine, self.kind.inpaint, self.kind.edit} - {None, self.kind.load}:
            # from_pipe shares the modules; without a dtype it would cast the shared modules to float32.
            pipes[name] = getattr(diffusers, name).from_pipe(base, dtype=base.dtype)
        if self.controlnet:
            # Refine only: an inpaint that must draw something new should not be held to the old content's edges.
            where, local = self.controlnet
            try:
                controlnet = diffusers.ControlNetModel.from_pretrained(where, dtype=dtype, local_files_only=local)
            except Exception as exc:
                raise BackboneError(f"could not load the ControlNet from {where}: {exc}") from exc
            name = CONTROLNET_KINDS[self.kind.name]
            pipes[name] = getattr(diffusers, name).from_pipe(base, controlnet=controlnet, dtype=base.dtype)
        for pipe in pipes.values():
            pipe.set_progress_bar_config(disable=True)
        # The ControlNet pipeline holds every module (the base's and the ControlNet), so placing it places all.
        try:
            self._placement = place(pipes[CONTROLNET_KINDS[self.kind.name]] if self.controlnet else base, device, self.config.offload)
        except torch.OutOfMemoryError as exc:
            raise self._out_of_memory() from exc
        self._pipes = pipes

    def _run(self, class_name: str, prompt: str, seed: int, adapters: dict[str, Weight] | None,
             call: dict[str, Any], strength: float | None, progress: Progress | None) -> np.ndarray:
        """One seeded pipeline call; returns H x W x 3 float32 in [0, 255]."""
        import torch

        with self._lock:  # a pipeline and its adapter state serve one call at a time
            pipe = self._pipeline(class_name)
            assert self._adapters is not None
            steps = self.config.steps if strength is None else max(self.config.steps, math.ceil(1.0 / strength))
            args: dict[str, Any] = {
                "prompt": prompt,
                "num_inference_steps": steps,
                "generator": torch.Generator("cpu").manual_seed(seed),  # CPU noise: the same picture on any device
                "output_type": "np",
                **call,
            }
            if self.config.guidance is not None:
                args["guidance_scale"] = self.config.guidance
            if self.kind.family == "flux":
                # Kontext otherwise snaps to ~1 MP preferred sizes and ignores height/width.
                args.update(max_area=args["height"] * args["width"], _auto_resize=False,
                            max_sequence_length=min(512, pipe.tokenizer_2.model_max_length))
            schedule = self._adapters.activate(pipe, adapters)
            if schedule is not None or progress is not None:
                args["callback_on_step_end"] = _step_end(schedule, progress)
            try:
                images = pipe(**args).images
            except torch.OutOfMemoryError as exc:
                raise self._out_of_memory() from exc
            finally:
                self._adapters.release(pipe)
        return np.asarray(images[0], np.float32) * 255.0


def _step_end(schedule: StepCallback | None, progress: Progress | None) -> StepCallback:
    """One ``callback_on_step_end``: the adapter schedule, then progress (which may raise to cancel the call)."""

    def step_end(pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        if schedule is not None:
            kwargs = schedule(pipe, step, timestep, kwargs)
        if progress is not None:
            total = int(getattr(pipe, "num_timesteps", 0) or step + 1)
            progress((step + 1) / total, f"step {step + 1}/{total}")
        return kwargs

    return step_end


HUB_PREFIX = "hf:"


def resolve_weights(weights: Path | str) -> tuple[str, bool]:
    """(where, is_local): an existing folder, or a hub id written ``hf:org/name``; anything else is an error, never a download.

    The prefix makes a download a deliberate choice: a mistyped local path such as
    ``models/sdxl`` must not be mistaken for a hub id.
    """
    text = str(weights)
    if text.startswith(HUB_PREFIX):
        return text[len(HUB_PREFIX):], False
    path = Path(text).expanduser()
    if not path.exists():
        raise BackboneError(f"weights {text!r}: no such folder (a hub id is written {HUB_PREFIX}org/name)")
    if not path.is_dir():
        raise BackboneError(f"weights {text!r}: expected a diffusers pipeline folder, found a file")
    return str(path), True


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if torch.backends.mps.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise BackboneError("BANANA_DEVICE=cuda, but torch sees no CUDA device (is this the CPU build of torch?)")
    return device


def resolve_dtype(dtype: str, device: str, kind: PipelineKind) -> str:
    """float32 on the CPU (half precision is slow or unsupported there); the model's own precision on a GPU."""
    if dtype != "auto":
        return dtype
    if device == "cuda":
        return kind.cuda_dtype
    return "float16" if device == "mps" else "float32"


def place(pipe: Any, device: str, offload: str) -> str:
    """Move the pipeline to ``device`` or install CPU offload; returns a note when a request could not be honoured."""
    if offload == "none":
        pipe.to(device)
        return ""
    if device != "cuda":  # accelerate's offload hooks need an accelerator and raise without one
        pipe.to(device)
        return f"offload={offload} ignored: it needs a GPU"
    if offload == "model":
        pipe.enable_model_cpu_offload()
    else:
        pipe.enable_sequential_cpu_offload()
    return f"{offload} CPU offload"


def crop_box(region: np.ndarray, margin: float, multiple: int) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1): the region's bounding box grown by ``margin`` of its size, at least ``multiple`` px a side."""
    ys, xs = np.nonzero(region)
    h, w = region.shape
    pad_y = max(multiple, int((ys.max() - ys.min() + 1) * margin))
    pad_x = max(multiple, int((xs.max() - xs.min() + 1) * margin))
    return max(0, ys.min() - pad_y), min(h, ys.max() + 1 + pad_y), max(0, xs.min() - pad_x), min(w, xs.max() + 1 + pad_x)


def canny_edges(rgb: np.ndarray) -> np.ndarray:
    """The control picture a Canny ControlNet expects: white edges on black, three channels."""
    edges = cv2.Canny(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), 100, 200)
    return np.repeat(edges[:, :, None], 3, axis=2)


def _mask_image(alpha: np.ndarray) -> PILImage.Image:
    return PILImage.fromarray(np.clip(np.round(alpha * 255), 0, 255).astype(np.uint8))


def _no_empty_fp32_warning(record: logging.LogRecord) -> bool:
    """Drop diffusers' "modules ... should be kept in float32: []" warning: it names no module (no-op casts in from_pipe, SDXL's VAE)."""
    return "should be kept in float32: []" not in record.getMessage()
