"""Open-vocabulary segment/detect (OWLv2 + SAM) on tiny random models saved to a folder, and the router's choice.

The tiny detector's box head is zeroed, so each of its 4 x 4 patches proposes its own
grid cell: valid boxes whatever the random class scores are, so the path runs end to end.
"""

import numpy as np
import pytest
import torch

from banana.experts.manager import choose, manager
from banana.experts.openvocab import DETECTOR_ENV, SAM_ENV
from banana.experts.perception import detect, segment
from banana.experts.targets import parse_target


def tiny_tokenizer():
    """Byte-level CLIP tokenizer whose pad id is 0 (OWL reads a query whose first id is 0 as padding)."""
    from transformers import CLIPTokenizer

    from banana.backbone.tiny import _byte_alphabet

    chars = _byte_alphabet()
    vocab = {}
    for token in ["<|pad|>", "<|startoftext|>", "<|endoftext|>", *chars, *(c + "</w>" for c in chars)]:
        vocab.setdefault(token, len(vocab))
    tok = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=16, pad_token="<|pad|>")
    assert len(tok) == len(vocab)
    return tok


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from transformers import (
        Owlv2Config,
        Owlv2ForObjectDetection,
        Owlv2ImageProcessor,
        Owlv2Processor,
        SamConfig,
        SamImageProcessor,
        SamModel,
        SamProcessor,
    )

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("openvocab")
    tok = tiny_tokenizer()
    owl = Owlv2ForObjectDetection(Owlv2Config(
        text_config={"vocab_size": len(tok), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                     "max_position_embeddings": 16, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 64, "patch_size": 16},
        projection_dim=32)).eval()
    with torch.no_grad():
        owl.box_head.dense2.weight.zero_()
        owl.box_head.dense2.bias.zero_()
    owl.save_pretrained(root / "owl")
    Owlv2Processor(image_processor=Owlv2ImageProcessor(size={"height": 64, "width": 64}), tokenizer=tok).save_pretrained(root / "owl")
    sam = SamModel(SamConfig(
        vision_config={"hidden_size": 32, "output_channels": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 64,
                       "patch_size": 8, "window_size": 4, "global_attn_indexes": [1], "mlp_dim": 64, "num_pos_feats": 8},
        prompt_encoder_config={"hidden_size": 16, "image_size": 64, "patch_size": 8, "image_embedding_size": 8, "mask_input_channels": 4},
        mask_decoder_config={"hidden_size": 16, "mlp_dim": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                             "iou_head_hidden_dim": 16})).eval()
    sam.save_pretrained(root / "sam")
    SamProcessor(image_processor=SamImageProcessor(size={"longest_edge": 64}, pad_size={"height": 64, "width": 64},
                                                   mask_size={"longest_edge": 16}, mask_pad_size={"height": 16, "width": 16})
                 ).save_pretrained(root / "sam")
    return root


@pytest.fixture
def configured(weights, monkeypatch):
    monkeypatch.setenv(DETECTOR_ENV, str(weights / "owl"))
    monkeypatch.setenv(SAM_ENV, str(weights / "sam"))
    yield weights
    manager().unload("openvocab.detector")
    manager().unload("openvocab.sam")


def test_router_picks_it_only_when_configured(weights, monkeypatch):
    lamp = parse_target("the lamp post")
    monkeypatch.delenv(DETECTOR_ENV, raising=False)
    monkeypatch.delenv(SAM_ENV, raising=False)
    with pytest.raises(LookupError):
        choose("segment", target=lamp)
    monkeypatch.setenv(DETECTOR_ENV, str(weights / "owl"))
    assert choose("detect", target=lamp)[1].chosen == "open-vocabulary-detector"
    with pytest.raises(LookupError):  # masks need SAM too
        choose("segment", target=lamp)
    monkeypatch.setenv(SAM_ENV, str(weights / "sam"))
    assert choose("segment", target=lamp)[1].chosen == "open-vocabulary-sam"
    assert choose("segment", target=parse_target("person"))[1].chosen == "selfie-segmentation"  # known kinds keep their expert


def test_segment_any_noun_end_to_end(configured, photos):
    coffee = photos["coffee"]
    mask = segment(image=coffee, target="the lamp post")
    assert mask.shape == (coffee.height, coffee.width)
    assert mask.alpha.max() > 0.5 and mask.alpha.min() >= 0.0
    assert {"openvocab.detector", "openvocab.sam"} <= set(manager().loaded())  # loaded through the expert manager


def test_detect_any_noun_gives_boxes_inside_the_picture(configured, photos):
    coffee = photos["coffee"]
    every = detect(image=coffee, target="cups")
    assert len(every) > 1 and every.labels[0] == "cups"
    for x0, y0, x1, y1 in every.boxes:
        assert 0 <= x0 < x1 <= coffee.width and 0 <= y0 < y1 <= coffee.height
    assert len(detect(image=coffee, target="the cup")) == 1  # singular: the best one
    rightmost = detect(image=coffee, target="the rightmost cup")
    assert len(rightmost) == 1 and rightmost.boxes[0][2] == max(b[2] for b in every.boxes)


def test_positional_pick_on_open_vocabulary_masks(configured, photos):
    coffee = photos["coffee"]
    every = segment(image=coffee, target="cups").alpha >= 0.5
    left = segment(image=coffee, target="the leftmost cup").alpha >= 0.5
    assert left.any() and left.sum() <= every.sum()
    assert np.nonzero(left)[1].mean() <= np.nonzero(every)[1].mean() + 1


def test_bad_weights_are_named(monkeypatch, photos, tmp_path):
    monkeypatch.setenv(DETECTOR_ENV, str(tmp_path / "nowhere"))
    monkeypatch.setenv(SAM_ENV, str(tmp_path / "nowhere"))
    try:
        with pytest.raises(ValueError, match=rf"{DETECTOR_ENV}=.*nowhere.*no such folder \(a hub id is written hf:org/name\)"):
            segment(image=photos["coffee"], target="lamp post")
    finally:
        manager().unload("openvocab.detector")


def test_without_weights_the_refusal_says_how_to_enable_it(monkeypatch, photos):
    monkeypatch.delenv(DETECTOR_ENV, raising=False)
    with pytest.raises(ValueError, match=rf"cannot find 'lamp post' \(no open-vocabulary expert is configured\).*{DETECTOR_ENV}"):
        segment(image=photos["coffee"], target="lamp post")
