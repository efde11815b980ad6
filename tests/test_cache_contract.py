"""The cache contract: keys cover everything a result depends on; the disk folder survives concurrency, kills and damage.

Real files, real processes (subprocess + kill -9), real pictures; nothing about PIL or the file system is mocked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from banana.agent.cache import HOST, ResultCache, cache_key
from banana.agent.executor import Executor
from banana.agent.program import validate
from banana.backbone.classical import ClassicalBackbone
from banana.experts.background import replace_background
from banana.experts.tone import adjust
from banana.tools import backbone as bb
from banana.tools.files import FilePath, ReadPolicy
from banana.tools.registry import Registry
from banana.tools.spec import ToolContext, tool
from banana.tools.values import Boxes, Image, Mask

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
CALLS: Counter[str] = Counter()


def _noise(seed: int, side: int = 48) -> Image:
    """A picture PNG cannot shrink, so entry sizes are predictable."""
    return Image(np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8))


def _soft_mask(photo: Image) -> Mask:
    """A soft mask with many distinct float values (the case 8- or 16-bit storage rounds)."""
    grey = photo.pixels.astype(np.float32).mean(axis=2) / 255.0
    return Mask(np.sqrt(grey) * 0.999)


def _run(executor: Executor, program: dict, inputs: dict) -> object:
    valid = validate(program, executor.registry, inputs={k: v.type_name for k, v in inputs.items()})
    result = executor.run(valid, inputs)
    assert result.ok, result.failures
    return result


def _python(code: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run code in a fresh interpreter (a new process: nothing memoised carries over)."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([PY, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=full_env, cwd=cwd or ROOT,
                          timeout=120, check=False)


# ---------------------------------------------------------------- keys: files, code, backbone, config, opt-out

BACKGROUND = {"version": 1, "nodes": [
    {"id": "bg", "tool": "replace_background", "args": {"image": "$input", "mask": "$m", "file": "backdrop.png"}}],
    "output": "$bg"}


def test_swapping_a_files_content_at_the_same_path_reruns_the_node(tmp_path, photos):
    backdrop = tmp_path / "backdrop.png"
    photo = photos["astronaut"]
    m = np.zeros(photo.pixels.shape[:2], np.float32)
    m[100:400, 150:350] = 1
    inputs = {"input": photo, "m": Mask(m)}
    reg = Registry([replace_background])
    policy = ReadPolicy(dirs=[tmp_path])

    photos["coffee"].save(backdrop)
    with Executor(reg, cache=ResultCache(disk=tmp_path / "cache"), files=policy) as ex:
        first = _run(ex, BACKGROUND, inputs)
        assert _run(ex, BACKGROUND, inputs).cached == {"bg"}  # same file, same content: a hit
        photos["chelsea"].save(backdrop)  # same path, other picture
        second = _run(ex, BACKGROUND, inputs)
    assert second.executed == ["bg"] and not second.cached
    changed = np.any(first.output.pixels != second.output.pixels, axis=2)
    assert changed[m == 0].mean() > 0.9 and not changed[115:385, 165:335].any()  # the new backdrop shows; the subject stays

    with Executor(reg, cache=ResultCache(disk=tmp_path / "cache"), files=policy) as ex:  # another process's view: the disk
        again = _run(ex, BACKGROUND, inputs)
    assert again.cached == {"bg"} and np.array_equal(again.output.pixels, second.output.pixels)


@tool(role="style")
def stamp_file(image: Image, ctx: ToolContext, *, file: FilePath) -> Image:
    """Reads a file, then rewrites it (as if someone replaced it while the node ran)."""
    CALLS["stamp_file"] += 1
    data = ctx.files.read(file)
    Path(ctx.files.resolve(file)).write_bytes(data + b"!")
    return Image(np.full_like(image.pixels, len(data) % 256))


def test_a_file_replaced_while_its_node_ran_is_not_cached(tmp_path):
    (tmp_path / "note.txt").write_bytes(b"abc")
    program = {"version": 1, "nodes": [{"id": "s", "tool": "stamp_file", "args": {"image": "$input", "file": "note.txt"}}],
               "output": "$s"}
    CALLS.clear()
    with Executor(Registry([stamp_file]), cache=ResultCache(), files=ReadPolicy(dirs=[tmp_path])) as ex:
        _run(ex, program, {"input": _noise(0)})
        second = _run(ex, program, {"input": _noise(0)})
    assert CALLS["stamp_file"] == 2 and second.executed == ["s"]


def test_declared_version_and_environment_change_the_key(monkeypatch):
    key = cache_key(adjust, {"warmth": 0.4}, {"image": "input:x"})
    bumped = tool(role="style", name="adjust", version="2")(adjust.fn)
    assert cache_key(bumped, {"warmth": 0.4}, {"image": "input:x"}) != key
    assert cache_key(adjust, {"warmth": 0.4}, {"image": "input:x"}, device="cuda:0") != key

    reads_env = tool(role="style", name="adjust", env=("BANANA_TEST_KNOB",))(adjust.fn)
    monkeypatch.setenv("BANANA_TEST_KNOB", "1")
    one = cache_key(reads_env, {}, {"image": "input:x"})
    monkeypatch.setenv("BANANA_TEST_KNOB", "2")
    assert cache_key(reads_env, {}, {"image": "input:x"}) != one


PLUGIN_TOOL = '''
from banana.tools.spec import tool
from banana.tools.values import Image
from plug.helpers import brighten


@tool(role="style")
def lighten(image: Image) -> Image:
    """Lighten the picture."""
    return Image(brighten(image.pixels))
'''
PLUGIN_HELPER = '''
import numpy as np


def brighten(px):
    return np.minimum(px.astype(int) + 10, 255).astype(np.uint8)
'''
KEY_OF_LIGHTEN = '''
import sys
sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else ".")
from plug.tools import lighten
from banana.agent.cache import cache_key
print(cache_key(lighten, {}, {"image": "input:x"}))
'''


def test_editing_a_tools_code_or_its_helper_changes_the_key_in_a_new_process(tmp_path):
    pkg = tmp_path / "plug"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "tools.py").write_text(PLUGIN_TOOL)
    (pkg / "helpers.py").write_text(PLUGIN_HELPER)

    def key() -> str:
        done = _python(KEY_OF_LIGHTEN, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    first = key()
    assert key() == first  # deterministic across processes
    (pkg / "helpers.py").write_text(PLUGIN_HELPER.replace("+ 10", "+ 20"))  # a helper in the same package
    second = key()
    assert second != first
    (pkg / "tools.py").write_text(PLUGIN_TOOL.replace("Lighten the picture.", "Lighten the picture a bit."))
    assert key() not in (first, second)


BACKBONE_KEY = '''
from banana.agent.cache import cache_key
from banana.backbone.tools import refine
print(cache_key(refine, {"prompt": "", "strength": 0.3, "seed": 0, "adapters": {}}, {"image": "input:x"}))
'''


def _weights(folder: Path, payload: bytes) -> Path:
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text('{"_class_name": "StableDiffusionInpaintPipeline"}')
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(payload)
    return folder


def test_backbone_weights_identity_separates_folders_and_agrees_across_processes(tmp_path):
    a = _weights(tmp_path / "a", b"\0" * 1000)
    b = _weights(tmp_path / "b", b"\0" * 1000)

    def key(weights: Path) -> str:
        done = _python(BACKBONE_KEY, env={"BANANA_BACKBONE_WEIGHTS": str(weights)})
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    key_a = key(a)
    assert key(a) == key_a  # same config, another process: the same key
    assert key(b) != key_a  # another weights folder
    (a / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"\1" * 1001)  # new weights in place
    assert key(a) != key_a


def test_installed_backbones_are_identified_by_their_config_not_their_address():
    before = bb.fingerprint()  # nothing loaded yet: from the environment's config
    bb.set_backbone(ClassicalBackbone(bb.BackboneConfig()))
    try:
        assert bb.fingerprint() == before  # loading the same config changes nothing
        bb.set_backbone(ClassicalBackbone(bb.BackboneConfig(steps=5)))
        assert bb.fingerprint() != before

        class Custom:  # no config: never shares results with another install
            name, generative = "custom", False

        bb.set_backbone(Custom())  # type: ignore[arg-type]
        one = bb.fingerprint()
        bb.set_backbone(Custom())  # type: ignore[arg-type]
        assert bb.fingerprint() != one
    finally:
        bb.set_backbone(None)


@tool(role="style", cache=False)
def volatile(image: Image, *, step: int = 0) -> Image:
    """Different every call (like a camera), so never cached."""
    CALLS["volatile"] += 1
    return Image(np.full_like(image.pixels, CALLS["volatile"] % 256 if step else 7))


@tool(role="style")
def counted(image: Image) -> Image:
    """Invert, counting calls."""
    CALLS["counted"] += 1
    return Image(255 - image.pixels)


def test_a_tool_that_opts_out_always_runs_and_its_dependants_key_on_its_output():
    def program(step: int) -> dict:
        return {"version": 1, "nodes": [{"id": "v", "tool": "volatile", "args": {"image": "$input", "step": step}},
                                        {"id": "c", "tool": "counted", "args": {"image": "$v"}}], "output": "$c"}

    CALLS.clear()
    with Executor(Registry([volatile, counted]), cache=ResultCache()) as ex:
        inputs = {"input": _noise(1)}
        _run(ex, program(0), inputs)
        same = _run(ex, program(0), inputs)  # volatile runs again, makes the same picture: counted is a hit
        assert same.executed == ["v"] and same.cached == {"c"}
        _run(ex, program(1), inputs)
        changed = _run(ex, program(1), inputs)  # volatile makes a new picture each time: counted must run on it
    assert changed.executed == ["v", "c"] and not changed.cached
    assert CALLS == {"volatile": 4, "counted": 3}


# ---------------------------------------------------------------- the disk folder

WRITER = '''
import os, sys, time
import numpy as np
from banana.agent.cache import ResultCache
from banana.tools.values import Image
folder, me, other = sys.argv[1], sys.argv[2], sys.argv[3]
cache = ResultCache(disk=folder)
value = Image(np.random.default_rng(7).integers(0, 256, (256, 256, 3), dtype=np.uint8))
open(os.path.join(folder, "..", me), "w").close()
while not os.path.exists(os.path.join(folder, "..", other)):  # a barrier through files: start together
    time.sleep(0.001)
for _ in range(25):
    cache.put("ab" * 20, value)
print("ok")
'''


def test_two_processes_writing_one_key_both_succeed_and_leave_a_valid_entry(tmp_path):
    folder = tmp_path / "cache"
    folder.mkdir()
    procs = [subprocess.Popen([PY, "-c", WRITER, str(folder), me, other], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
             for me, other in (("one", "two"), ("two", "one"))]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0 and out.strip() == "ok", err
    expected = np.random.default_rng(7).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    cache = ResultCache(disk=folder)
    assert np.array_equal(cache.get("ab" * 20, "Image").pixels, expected)
    assert [p.name for p in folder.iterdir()] == [f"{'ab' * 20}.Image.png"]  # no temp file left behind


KILLED_WRITER = '''
import os, sys, time
from banana.agent.cache import ResultCache
from banana.agent.executor import Executor
from banana.agent.program import validate
from banana.agent.samples import sample
from banana.experts.tone import adjust
from banana.tools.registry import Registry
folder, ready = sys.argv[1], sys.argv[2]
real_replace = os.replace
def slow_replace(src, dst):  # the temp file is complete; the rename has not happened
    open(ready, "w").close()
    time.sleep(120)
    real_replace(src, dst)
os.replace = slow_replace
program = {"version": 1, "nodes": [{"id": "w", "tool": "adjust", "args": {"image": "$input", "warmth": 0.4}}], "output": "$w"}
reg = Registry([adjust])
with Executor(reg, cache=ResultCache(disk=folder)) as ex:
    ex.run(validate(program, reg), {"input": sample("astronaut")})
'''
ADJUST = {"version": 1, "nodes": [{"id": "w", "tool": "adjust", "args": {"image": "$input", "warmth": 0.4}}], "output": "$w"}


def test_kill_9_in_the_middle_of_a_write_leaves_no_entry_and_the_next_runs_miss_then_hit(tmp_path, astronaut):
    folder, ready = tmp_path / "cache", tmp_path / "ready"
    proc = subprocess.Popen([PY, "-c", KILLED_WRITER, str(folder), str(ready)], cwd=ROOT, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "the writer never reached the rename"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    left = [p.name for p in folder.iterdir()]
    assert len(left) == 1 and left[0].startswith(f".tmp-{HOST}-{proc.pid}-")  # only the dead writer's temp file

    reg = Registry([adjust])
    with Executor(reg, cache=ResultCache(disk=folder)) as ex:  # opening the folder removes the orphan
        assert not any(p.name.startswith(".tmp-") for p in folder.iterdir())
        first = _run(ex, ADJUST, {"input": astronaut})
    with Executor(reg, cache=ResultCache(disk=folder)) as ex:
        second = _run(ex, ADJUST, {"input": astronaut})
    assert first.executed == ["w"] and second.cached == {"w"}
    assert np.array_equal(first.output.pixels, second.output.pixels)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
@pytest.mark.parametrize("value", [_noise(3), Mask(np.linspace(0, 1, 48 * 48, dtype=np.float32).reshape(48, 48)),
                                   Boxes(((1, 2, 30, 40),), (0.9,), ("cat",))], ids=["Image", "Mask", "Boxes"])
def test_a_damaged_entry_is_a_miss_and_is_deleted(tmp_path, value, damage):
    key = "cd" * 20
    ResultCache(disk=tmp_path).put(key, value)
    entry = tmp_path / f"{key}.{value.type_name}{value.suffix}"
    data = entry.read_bytes()
    entry.write_bytes({"truncate": data[: len(data) // 2], "garbage": os.urandom(len(data)), "empty": b""}[damage])
    cache = ResultCache(disk=tmp_path)
    assert cache.get(key) is None and cache.dropped == 1 and not entry.exists()
    cache.put(key, value)  # replaced by the run that recomputes it
    assert ResultCache(disk=tmp_path).get(key).content_hash == value.content_hash


def test_a_truncated_entry_makes_the_next_run_recompute_not_fail(tmp_path, astronaut):
    reg = Registry([adjust])
    with Executor(reg, cache=ResultCache(disk=tmp_path)) as ex:
        cold = _run(ex, ADJUST, {"input": astronaut})
    (entry,) = tmp_path.iterdir()
    entry.write_bytes(entry.read_bytes()[:1000])
    with Executor(reg, cache=ResultCache(disk=tmp_path)) as ex:
        again = _run(ex, ADJUST, {"input": astronaut})
    with Executor(reg, cache=ResultCache(disk=tmp_path)) as ex:
        third = _run(ex, ADJUST, {"input": astronaut})
    assert again.executed == ["w"] and third.cached == {"w"}
    assert np.array_equal(third.output.pixels, cold.output.pixels)


def test_the_size_bound_evicts_the_least_recently_used(tmp_path):
    ResultCache(disk=tmp_path).put("00" * 20, _noise(0))
    size = (tmp_path / f"{'00' * 20}.Image.png").stat().st_size
    bound = int(size * 3.5)
    writer = ResultCache(disk=tmp_path, disk_max_bytes=bound)
    for i in (1, 2):
        writer.put(f"{i:02d}" * 20, _noise(i))
    assert ResultCache(disk=tmp_path).get("00" * 20) is not None  # 00 is used again: now 01 is the oldest
    writer.put("03" * 20, _noise(3))  # a fourth entry: over the bound
    names = sorted(p.name[:2] for p in tmp_path.iterdir())
    assert names == ["00", "02", "03"]
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) <= bound


def test_opening_an_over_full_folder_with_a_smaller_bound_evicts(tmp_path):
    cache = ResultCache(disk=tmp_path)
    for i in range(4):
        cache.put(f"{i:02d}" * 20, _noise(i))
    size = (tmp_path / f"{'00' * 20}.Image.png").stat().st_size
    ResultCache(disk=tmp_path, disk_max_bytes=size * 2)
    assert sorted(p.name[:2] for p in tmp_path.iterdir()) == ["03"]  # down to 90 % of the bound, newest kept


def test_orphaned_temp_files_are_removed_and_nothing_else(tmp_path):
    dead = subprocess.run([PY, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    dead_pid = int(dead.stdout)
    names = {
        "dead": f".tmp-{HOST}-{dead_pid}-ab12-{'aa' * 20}.Image.png",  # its writer is gone
        "old": f".tmp-0badf00d-{os.getpid()}-cd34-{'bb' * 20}.Image.png",  # another host's, two hours old
        "young": f".tmp-0badf00d-{os.getpid()}-ef56-{'cc' * 20}.Image.png",  # another host's, just written: keep
        "mine": f".tmp-{HOST}-{os.getpid()}-0a0b-{'dd' * 20}.Image.png",  # a live writer (this process): keep
        "other": "notes.txt",  # not ours: never touched, however old
    }
    for n in names.values():
        (tmp_path / n).write_bytes(b"x")
    two_hours_ago = time.time() - 7200
    for which in ("old", "other"):
        os.utime(tmp_path / names[which], (two_hours_ago, two_hours_ago))
    cache = ResultCache(disk=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[k] for k in ("young", "mine", "other"))
    assert cache.clean_orphans() == 0


def test_a_reloaded_mask_is_exactly_the_cold_one_and_what_uses_it_matches(tmp_path, astronaut):
    mask = _soft_mask(astronaut)
    cache = ResultCache(disk=tmp_path)
    cache.put("ee" * 20, mask)
    back = ResultCache(disk=tmp_path).get("ee" * 20, "Mask")
    assert back.alpha.dtype == np.float32 and np.array_equal(back.alpha, mask.alpha)
    assert back.content_hash == mask.content_hash
    assert len(np.unique(mask.alpha)) > 200  # a soft mask, not a 0/1 one

    program = {"version": 1, "nodes": [
        {"id": "g", "tool": "grow", "args": {"mask": "$m", "pixels": 3}},
        {"id": "b", "tool": "blur", "args": {"image": "$input", "mask": "$g", "amount": 0.5}}], "output": "$b"}
    from banana.experts.background import blur
    from banana.experts.masks import grow

    reg = Registry([grow, blur])
    inputs = {"input": astronaut, "m": mask}
    with Executor(reg, cache=ResultCache(disk=tmp_path / "run")) as ex:
        cold = _run(ex, program, inputs)
    for entry in (tmp_path / "run").glob("*.Image.png"):
        entry.unlink()  # blur runs again, on the grown mask as reloaded from disk
    with Executor(reg, cache=ResultCache(disk=tmp_path / "run")) as ex:
        warm = _run(ex, program, inputs)
    assert warm.cached == {"g"} and warm.executed == ["b"]
    assert np.array_equal(warm.output.pixels, cold.output.pixels)


def test_cli_cache_options(tmp_path):
    from banana.agent.cli import app

    program = tmp_path / "p.json"
    program.write_text('{"version": 1, "nodes": [{"id": "w", "tool": "adjust", "args": {"image": "$input", "warmth": 0.4}}],'
                       ' "output": "$w"}')
    runner = CliRunner()
    base = ["run", str(program), "-i", "sample:astronaut", "-o", str(tmp_path / "out.png"), "-q"]
    as_file = runner.invoke(app, [*base, "--cache-dir", str(program)])
    assert as_file.exit_code == 2 and "exists and is not a folder" in as_file.output
    alone = runner.invoke(app, [*base, "--cache-max-gb", "1"])
    assert alone.exit_code == 2 and "give --cache-dir too" in alone.output
    ok = runner.invoke(app, [*base, "--cache-dir", str(tmp_path / "c"), "--cache-max-gb", "0.5"])
    assert ok.exit_code == 0, ok.output
    assert len(list((tmp_path / "c").glob("*.Image.png"))) == 1
