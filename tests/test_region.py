"""region: where something goes, as a mask, on a real photo."""

import numpy as np
import pytest

from banana.agent.program import ProgramError, validate
from banana.tools.values import Boxes


def centre(mask):
    ys, xs = np.nonzero(mask.alpha >= 0.5)
    return xs.mean(), ys.mean()


@pytest.mark.parametrize(
    ("position", "where"),
    [("left", (0.175, 0.5)), ("right", (0.825, 0.5)), ("top", (0.5, 0.175)), ("bottom", (0.5, 0.825)), ("center", (0.5, 0.5)),
     ("top-left", (0.175, 0.175)), ("bottom-right", (0.825, 0.825))],
)
def test_positions(registry, photos, position, where):
    coffee = photos["coffee"]  # 400 x 600: not square, so x and y mix-ups show
    mask = registry.get("region")(image=coffee, position=position)
    assert mask.shape == (coffee.height, coffee.width)
    x, y = centre(mask)
    assert abs(x / coffee.width - where[0]) < 0.02 and abs(y / coffee.height - where[1]) < 0.02
    assert abs((mask.alpha >= 0.5).mean() - 0.35**2) < 0.03  # plus a few feathered pixels


def test_size_scales_a_position(registry, photos):
    whole = registry.get("region")(image=photos["coffee"], position="center", size=1.0)
    assert whole.alpha.min() == 1.0


REF = Boxes(((200.0, 100.0, 300.0, 300.0),), image_size=(400, 600))


@pytest.mark.parametrize(
    ("relation", "inside", "outside"),
    [("left-of", (140, 250), (250, 200)), ("right-of", (360, 250), (250, 200)), ("above", (250, 40), (250, 200)),
     ("below", (250, 360), (250, 200)), ("on", (250, 80), (250, 200)), ("around", (170, 200), (250, 200))],
)
def test_relations_to_a_box(registry, photos, relation, inside, outside):
    mask = registry.get("region")(image=photos["coffee"], boxes=REF, relation=relation)
    assert mask.alpha[inside[1], inside[0]] == 1.0
    assert mask.alpha[outside[1], outside[0]] == 0.0  # never over the reference itself


def test_beside_shares_the_ground_line(registry, photos):
    mask = registry.get("region")(image=photos["coffee"], boxes=REF, relation="left-of", size=0.5)
    ys, _ = np.nonzero(mask.alpha >= 0.5)
    assert abs(ys.max() - 299) <= 3 and abs(ys.min() - 200) <= 3  # feathered by a few pixels


def test_boxes_are_scaled_to_the_picture(registry, photos):
    half = Boxes(((100.0, 50.0, 150.0, 150.0),), image_size=(200, 300))
    a = registry.get("region")(image=photos["coffee"], boxes=half, relation="right-of")
    b = registry.get("region")(image=photos["coffee"], boxes=REF, relation="right-of")
    assert np.abs(a.alpha - b.alpha).max() < 0.05


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"relation": "left-of"}, "relation 'left-of' needs boxes"),
     ({"position": "left", "boxes": REF}, "boxes are only used with a relation"),
     ({"relation": "left-of", "boxes": Boxes(((0.0, 100.0, 50.0, 300.0),), image_size=(400, 600))}, "falls outside the picture"),
     ({"relation": "above", "boxes": Boxes(())}, "the boxes are empty"),
     ({"position": "left", "size": 1.5}, "at most 1")],
)
def test_refusals_say_what_is_wrong(registry, photos, kwargs, message):
    with pytest.raises(ValueError, match=message):
        registry.get("region")(image=photos["coffee"], **kwargs)


def test_validator_wants_exactly_one_of_position_and_relation(registry):
    both = {"version": 1, "nodes": [
        {"id": "spot", "tool": "region", "args": {"image": "$input", "position": "left", "relation": "on"}},
        {"id": "vase", "tool": "insert", "args": {"image": "$input", "mask": "$spot", "prompt": "a vase"}}], "output": "$vase"}
    with pytest.raises(ProgramError, match="position"):
        validate(both, registry)
    validate({**both, "nodes": [{**both["nodes"][0], "args": {"image": "$input", "position": "left"}}, both["nodes"][1]]}, registry)
