import sys
import textwrap
from importlib.metadata import EntryPoint
from typing import Annotated, Literal

import pytest
from pydantic import Field, ValidationError

from banana.tools.registry import Registry, RegistryError
from banana.tools.spec import Resources, ToolContext, tool
from banana.tools.values import Image, Mask, Number


@tool(role="style", resources=Resources(device="gpu", memory_mb=100))
def posterize(image: Image, mask: Mask | None = None, *, levels: Annotated[int, Field(ge=2, le=8)] = 4,
              mode: Literal["rgb", "luma"] = "rgb", ctx: ToolContext) -> Image:
    """Reduce the number of colour levels."""
    ctx.progress(0.5, "half")
    step = 256 // levels
    return Image((image.pixels // step * step).astype("uint8"))


def test_decorator_derives_ports_args_and_output():
    assert posterize.name == "posterize"
    assert posterize.description == "Reduce the number of colour levels."
    assert {k: (p.type, p.required) for k, p in posterize.inputs.items()} == {"image": ("Image", True), "mask": ("Mask", False)}
    assert posterize.arg_names == ["levels", "mode"]
    props = posterize.args_schema()["properties"]
    assert props["levels"]["minimum"] == 2 and props["levels"]["maximum"] == 8
    assert props["mode"]["enum"] == ["rgb", "luma"]
    assert posterize.output == "Image"
    assert posterize.signature() == "posterize(image: Image, mask?: Mask, levels=4, mode='rgb') -> Image"


def test_call_validates_literals_and_reports_progress(astronaut):
    seen = []
    out = posterize(ToolContext(on_progress=lambda f, m: seen.append((f, m))), image=astronaut, levels=2)
    assert set(out.pixels.reshape(-1).tolist()) <= {0, 128}
    assert seen == [(0.5, "half")]
    with pytest.raises(ValidationError, match="levels"):
        posterize(image=astronaut, levels=99)


def test_decorator_rejects_bad_definitions():
    with pytest.raises(ValueError, match="description"):
        @tool(role="style")
        def nodoc(image: Image) -> Image:
            return image
    with pytest.raises(TypeError, match="keyword-only"):
        @tool(role="style")
        def positional(image: Image, amount: float = 1.0) -> Image:
            """Doc."""
            return image
    with pytest.raises(TypeError, match="return annotation"):
        @tool(role="style")
        def noreturn(image: Image):  # type: ignore[no-untyped-def]
            """Doc."""
    with pytest.raises(TypeError, match="must return Image"):
        @tool(role="style")
        def liar(image: Image) -> Image:
            """Doc."""
            return Number(1)  # type: ignore[return-value]
        liar(image=Image.__new__(Image))


def test_registry_duplicates_and_suggestions():
    reg = Registry([posterize])
    with pytest.raises(RegistryError, match="already registered"):
        reg.register(posterize)
    with pytest.raises(RegistryError, match="did you mean 'posterize'"):
        reg.get("posterise")


def test_default_registry_has_core_tools(registry):
    assert {"invert", "combine", "grow", "blur", "adjust", "crop"} <= set(registry.names())


def test_plugin_found_through_entry_point(tmp_path, monkeypatch):
    """A user's plug-in: one file, one decorator, one entry point in its own distribution."""
    (tmp_path / "my_plugin.py").write_text(textwrap.dedent('''
        from banana.tools import Image, tool

        @tool(role="style")
        def mirror(image: Image) -> Image:
            """Mirror the picture left to right."""
            return Image(image.pixels[:, ::-1])
    '''))
    dist = tmp_path / "my_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[banana.tools]\nmirror = my_plugin:mirror\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry()
    loaded = reg.load_entry_points()
    assert "mirror" in loaded and "blur" in loaded
    assert "my_plugin" in reg.sources["mirror"]
    sys.modules.pop("my_plugin", None)


def test_broken_plugin_names_itself():
    ep = EntryPoint(name="broken", value="no_such_module_xyz:thing", group="banana.tools")
    with pytest.raises(RegistryError, match=r"entry point 'broken'.*failed to import"):
        Registry().load_entry_points([ep])


def test_context_parameter_may_have_any_name(astronaut):
    seen = []

    @tool(role="style")
    def noted(image: Image, *, context: ToolContext) -> Image:
        """Reports progress through a context named 'context'."""
        context.progress(1.0, "done")
        return image

    noted(ToolContext(on_progress=lambda f, m: seen.append(m)), image=astronaut)
    assert seen == ["done"]


def test_ports_are_type_checked_by_name(astronaut):
    with pytest.raises(TypeError, match="posterize: port 'image' takes Image, got Mask"):
        posterize(image=Mask(astronaut.pixels[..., 0] > 0))
    with pytest.raises(TypeError, match="posterize: missing port"):
        posterize(levels=2)


def test_module_plugins_register_only_what_they_list(tmp_path, monkeypatch):
    (tmp_path / "reexporting.py").write_text(textwrap.dedent('''
        from banana.experts.masks import invert  # imported, not this plug-in's
        from banana.tools import Image, tool

        __all__ = ["flip"]

        @tool(role="style")
        def flip(image: Image) -> Image:
            """Flip the picture upside down."""
            return Image(image.pixels[::-1])
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    reg = Registry()
    reg.register_object(importlib.import_module("reexporting"), "test")
    assert reg.names() == ["flip"]
    sys.modules.pop("reexporting", None)
