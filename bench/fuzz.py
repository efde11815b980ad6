"""Fuzz the two doors untrusted input comes through: the program validator and the picture loader.

Programs are built at random from the registry's own schemas (right and wrong types, numbers in and
out of bounds, references to anything), then mutated as JSON (fields dropped or replaced, nodes
duplicated, cycles, deep nesting) and as text (bytes flipped, cut). A picture file is a small real
picture in one of a dozen formats and modes, mutated as bytes (flips, cuts, duplicated runs, header
sizes set huge). The only allowed outcomes are ``ValidProgram`` / ``ProgramError`` and ``Image`` /
``PictureError``; anything else is a crash, printed with its input, and the run exits 1.

Run: ``make fuzz`` (or ``.venv/bin/python -m bench.fuzz --programs 10000 --images 1000 --seed 0``).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import random
import resource
import struct
import sys
import tempfile
import time
import traceback
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo

from banana.agent.program import ProgramError, ValidProgram, validate
from banana.tools.registry import Registry, default_registry
from banana.tools.values import META_KEY, Image, PictureError

WORDS = ["person", "the red car", "sky", "background", "navy", "a beach", "face", "hair", "", " ", "x" * 300,
         "é\u0301", "\u202e", "[/x]", "\x00", "$input", "$", "../../etc/passwd", "~/.ssh/id_rsa", "1e400"]
ODD = [None, True, False, 0, -1, 1e308, -1e308, 1e-320, 2**63, 0.5, "", "NaN", [], {}, [1, 2, 3, 4], {"a": 1},
       "$input", "$input1", "$nope", "$a\n", "$", "$$a", "$A", "$" + "a" * 40, "x" * 10_000]


# ---------------------------------------------------------------- programs


def _value(rng: random.Random, prop: dict[str, Any]) -> Any:
    """A value for one literal arg: usually what its schema allows, sometimes just outside, sometimes anything."""
    if rng.random() < 0.03:
        return rng.choice(ODD)
    if "anyOf" in prop:
        return _value(rng, rng.choice(prop["anyOf"]))
    if "enum" in prop:
        return rng.choice(prop["enum"])
    if "const" in prop:
        return prop["const"]
    kind = prop.get("type")
    if kind in ("number", "integer"):
        lo = prop.get("minimum", prop.get("exclusiveMinimum", -10))
        hi = prop.get("maximum", prop.get("exclusiveMaximum", 10))
        margin = 0.0 if rng.random() < 0.8 else 0.2 * (hi - lo + 1)
        x = rng.uniform(lo - margin, hi + margin)
        return round(x) if kind == "integer" else x
    if kind == "string":
        return rng.choice(WORDS[:7] if rng.random() < 0.85 else WORDS)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "array":
        n = prop.get("minItems", rng.randint(0, 5))
        return [_value(rng, prop.get("items", {})) for _ in range(n)]
    return rng.choice(ODD)


def random_program(rng: random.Random, registry: Registry) -> dict[str, Any]:
    """A program made of registered tools whose ports mostly point at earlier nodes of the right type."""
    specs = list(registry)
    n = rng.choice([1, 2, 2, 3, 3, 4, 5, 8, 33]) if rng.random() < 0.95 else rng.randint(0, 40)
    nodes: list[dict[str, Any]] = []
    made: list[tuple[str, str]] = [("input", "Image")]
    for i in range(n):
        runnable = [s for s in specs if all(any(t == p.type for _, t in made) for p in s.inputs.values() if p.required)]
        spec = rng.choice(runnable if runnable and rng.random() < 0.9 else specs)
        picked = {rng.choice(g) for g in spec.one_of} if rng.random() < 0.9 else set()
        left_out = {m for g in spec.one_of for m in g} - picked
        args: dict[str, Any] = {}
        for port, p in spec.inputs.items():
            if port in left_out or (not p.required and port not in picked and rng.random() < 0.5):
                continue
            fitting = [m for m, t in made if t == p.type]
            if not fitting and not p.required and rng.random() < 0.95:
                continue
            pool = fitting if fitting and rng.random() < 0.95 else [m for m, _ in made]
            args[port] = "$" + rng.choice(pool)
        for name, prop in spec.args_schema().get("properties", {}).items():
            if name in picked or name in spec.required_args() or (name not in left_out and rng.random() < 0.3):
                args[name] = _value(rng, prop)
        node_id = f"n{i}" if rng.random() < 0.98 else rng.choice(["input", "n0", "A", "", "a b", "x" * 40])
        nodes.append({"id": node_id, "tool": spec.name, "args": args})
        made.append((node_id, spec.output))
    output = "$" + made[-1][0] if rng.random() < 0.97 else rng.choice(ODD)
    return {"version": 1, "nodes": nodes, "output": output}


def _nest(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def mutate_tree(rng: random.Random, program: dict[str, Any]) -> Any:
    """One structural change to a program's JSON."""
    op = rng.randrange(10)
    nodes = program.get("nodes") if isinstance(program.get("nodes"), list) else []
    dicts = [n for n in nodes if isinstance(n, dict)]
    node = rng.choice(dicts) if dicts else None
    if op == 0 and node is not None:  # drop a field of a node
        node.pop(rng.choice(list(node)), None)
    elif op == 1 and node is not None and isinstance(node.get("args"), dict) and node["args"]:
        node["args"][rng.choice(list(node["args"]))] = rng.choice(ODD)
    elif op == 2 and node is not None:
        node[rng.choice(["id", "tool", "args", "extra"])] = rng.choice(ODD)
    elif op == 3 and node is not None:  # duplicate a node (same id)
        nodes.append(dict(node))
    elif op == 4 and node is not None and isinstance(node.get("args"), dict):  # a cycle: read itself or a later node
        node["args"][rng.choice(list(node["args"]) or ["image"])] = "$" + str(rng.choice(dicts).get("id", "x"))
    elif op == 5:  # deep nesting somewhere
        where = rng.choice(["output", "nodes", "version", "arg"])
        deep = _nest(rng.choice([10, 100, 1000, 5000]))
        if where == "arg" and node is not None and isinstance(node.get("args"), dict):
            node["args"]["amount"] = deep
        elif where != "arg":
            program[where] = deep
    elif op == 6:
        program[rng.choice(["version", "output", "nodes", "extra"])] = rng.choice(ODD)
    elif op == 7:
        program.pop(rng.choice(list(program) or ["nodes"]), None)
    elif op == 8 and node is not None:
        node["tool"] = rng.choice(["blurr", "segmnet", "BLUR", "", "cannot", "__import__", "x" * 100])
    else:
        return rng.choice([[], "", 0, None, [program], {"program": program}])
    return program


def mutate_text(rng: random.Random, text: str) -> str:
    """Byte-level damage to the JSON text (flips, cuts, insertions of JSON punctuation)."""
    chars = list(text)
    for _ in range(rng.randint(1, 4)):
        if not chars:
            break
        i = rng.randrange(len(chars))
        op = rng.randrange(4)
        if op == 0:
            chars[i] = rng.choice('{}[]",:$\\\n\x00é')
        elif op == 1:
            del chars[i:]
        elif op == 2:
            chars.insert(i, rng.choice(["[" * 3000, '"\\ud800"', "1e999", "-", "NaN", "Infinity", "\ufeff"]))
        else:
            del chars[i]
    return "".join(chars)


def program_case(seed: int, registry: Registry) -> tuple[Any, dict[str, str]]:
    """(program as dict or text, session inputs) for one fuzz case; deterministic in ``seed``."""
    rng = random.Random(seed)
    program: Any = random_program(rng, registry)
    for _ in range(rng.choice([0, 0, 0, 1, 1, 2, 3])):
        if not isinstance(program, dict):
            break
        program = mutate_tree(rng, program)
    data: Any = program
    if rng.random() < 0.5:
        try:
            data = json.dumps(program, allow_nan=True) if rng.random() < 0.9 else json.dumps(program, indent=rng.randint(0, 3))
        except RecursionError:  # too deep for Python's encoder: the text form nests by hand
            data = '{"version":1,"nodes":' + "[" * 100_000 + "]" * 100_000 + ',"output":"$a"}'
        if rng.random() < 0.3:
            data = mutate_text(rng, data)
        if rng.random() < 0.1:
            data = data.encode("utf-8", "surrogatepass")
    inputs = rng.choice([{"input": "Image"}, {"input": "Image", "input1": "Image"}, {}, {"input": "Mask"}])
    return data, inputs


def _preview(data: Any) -> str:
    try:
        return (data if isinstance(data, str) else repr(data))[:300]
    except RecursionError:
        return "<a deeply nested object>"


def check_program(data: Any, inputs: dict[str, str], registry: Registry) -> str:
    """'valid' or 'refused' when the validator answered as it must (ValidProgram, ProgramError); else the crash."""
    try:
        out = validate(data, registry, inputs=inputs)
    except ProgramError:
        return "refused"
    except Exception:
        return traceback.format_exc(limit=4)
    return "valid" if isinstance(out, ValidProgram) else f"validate returned {type(out).__name__}"


# ---------------------------------------------------------------- pictures


def _save(im: PILImage.Image, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def seed_pictures() -> dict[str, bytes]:
    """Small real pictures in the formats and modes people send."""
    rng = np.random.default_rng(0)
    rgb = PILImage.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8))
    rgba = PILImage.fromarray(rng.integers(0, 255, (24, 32, 4), dtype=np.uint8), "RGBA")
    grey16 = PILImage.fromarray(rng.integers(0, 65535, (24, 32), dtype=np.uint16))
    exif_im = rgb.copy()
    exif = exif_im.getexif()
    exif[0x0112] = 6
    meta = PngInfo()
    meta.add_text(META_KEY, json.dumps({"backbone": "classical"}))
    frames = [PILImage.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 255, 0))]
    pal = rgb.convert("P")
    return {
        "png": _save(rgb, "PNG"), "png-meta": _save(rgb, "PNG", pnginfo=meta), "rgba": _save(rgba, "PNG"),
        "grey16": _save(grey16, "PNG"), "palette-t": _save(pal, "PNG", transparency=0), "jpeg": _save(rgb, "JPEG"),
        "jpeg-exif": _save(exif_im, "JPEG", exif=exif), "cmyk": _save(rgb.convert("CMYK"), "JPEG"),
        "gif-anim": _save(frames[0], "GIF", save_all=True, append_images=frames[1:]), "bmp": _save(rgb, "BMP"),
        "tiff": _save(rgb, "TIFF"), "tiff-f": _save(PILImage.new("F", (8, 8), 2.5), "TIFF"), "webp": _save(rgb, "WEBP"),
        "ico": _save(rgb, "ICO"), "tga": _save(rgb, "TGA"), "ppm": _save(rgb, "PPM"),
    }


def _png_size(data: bytearray, width: int, height: int) -> None:
    """Rewrite a PNG's IHDR size with a valid CRC (so the size, not a checksum, is what gets tested)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 33 and data[12:16] == b"IHDR":
        data[16:24] = struct.pack(">II", width, height)
        data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)


def mutate_picture(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(7)
        i = rng.randrange(max(1, len(out)))
        if op == 0 and out:
            out[i] ^= 1 << rng.randrange(8)
        elif op == 1 and out:
            out[i] = rng.choice([0, 0xFF, 0x7F, 0x80])
        elif op == 2:
            del out[i:]
        elif op == 3:
            out[i:i] = out[i: i + rng.randint(1, 256)]
        elif op == 4:
            out[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
        elif op == 5:
            _png_size(out, rng.choice([0, 1, 12000, 40000, 2**31 - 1]), rng.choice([0, 1, 12000, 10, 2**31 - 1]))
        elif out:  # a 16- or 32-bit field set huge, wherever it lands
            j = min(i, max(0, len(out) - 4))
            out[j: j + 4] = rng.choice([b"\xff\xff\xff\xff", b"\x00\x00\xff\xff", b"\x7f\xff\x00\x00"])
    return bytes(out)


def check_picture(path: Path) -> str:
    """'loaded' or 'refused' when the loader answered as it must (an 8-bit RGB Image, a PictureError); else the crash."""
    try:
        out = Image.load(path)
    except PictureError:
        return "refused"
    except Exception:
        return traceback.format_exc(limit=4)
    px = out.pixels
    if px.dtype != np.uint8 or px.ndim != 3 or px.shape[2] != 3 or px.shape[0] * px.shape[1] > 40_000_000:
        return f"loaded an unusable picture {px.shape} {px.dtype}"
    return "loaded"


# ---------------------------------------------------------------- run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--programs", type=int, default=10_000)
    ap.add_argument("--images", type=int, default=1_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")  # PIL warns about every odd tag it skips; outcomes are what count here
    logging.getLogger("banana.tools.pictures").setLevel(logging.ERROR)  # "animated: first frame" notes
    registry = default_registry()
    crashes: list[str] = []

    t0 = time.perf_counter()
    counts = {"valid": 0, "refused": 0, "loaded": 0}
    program_crashes = picture_crashes = 0
    for k in range(args.programs):
        case = args.seed * 1_000_003 + k
        data, inputs = program_case(case, registry)
        outcome = check_program(data, inputs, registry)
        if outcome in counts:
            counts[outcome] += 1
        else:
            program_crashes += 1
            crashes.append(f"program case {case} (bench.fuzz.program_case({case}, registry)):\n{_preview(data)}\n{outcome}")
    t_programs = time.perf_counter() - t0
    refused_programs, counts["refused"] = counts["refused"], 0

    t1 = time.perf_counter()
    rng = random.Random(args.seed)
    seeds = seed_pictures()
    with tempfile.TemporaryDirectory(prefix="banana-fuzz-") as tmp:
        for k in range(args.images):
            name = rng.choice(sorted(seeds))
            path = Path(tmp) / f"{k}-{name}.bin"
            path.write_bytes(mutate_picture(rng, seeds[name]))
            outcome = check_picture(path)
            if outcome in counts:
                counts[outcome] += 1
            else:
                picture_crashes += 1
                crashes.append(f"picture {path.name} ({path.stat().st_size} bytes, kept in out/fuzz-crashes):\n{outcome}")
                (Path("out") / "fuzz-crashes").mkdir(parents=True, exist_ok=True)
                (Path("out") / "fuzz-crashes" / path.name).write_bytes(path.read_bytes())
            path.unlink()
    t_images = time.perf_counter() - t1

    for c in crashes[:10]:
        print(c, file=sys.stderr)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"programs: {args.programs}, crashes: {program_crashes} ({counts['valid']} valid, {refused_programs} "
          f"refused with a ProgramError; {t_programs:.1f} s)")
    print(f"images: {args.images}, crashes: {picture_crashes} ({counts['loaded']} loaded, {counts['refused']} "
          f"refused with a PictureError; {t_images:.1f} s)")
    print(f"seed {args.seed}, peak memory {peak_mb:.0f} MB")
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
