"""The expert manager: lazy loading once, LRU eviction under a budget, device choice, routing; and the real models through it."""

from __future__ import annotations

import threading
import time

import pytest

from banana.experts.manager import ExpertManager, ManagerConfig, ModelSpec, choose, cuda_available, implementations, implements, manager
from banana.experts.perception import detect_faces
from banana.experts.targets import parse_target


def counting(name: str, memory_mb: int, calls: list[str], delay: float = 0.0) -> ModelSpec:
    def load(device: str) -> dict[str, str]:
        time.sleep(delay)
        calls.append(name)
        return {"name": name, "device": device}

    return ModelSpec(name, load, memory_mb, wants_gpu=False)


def test_a_model_loads_lazily_and_once():
    calls: list[str] = []
    m = ExpertManager(ManagerConfig(budget_mb=1000))
    m.declare(counting("a", 10, calls))
    assert calls == [] and m.loaded() == {}
    first = m.get("a")
    assert m.get("a") is first and calls == ["a"]
    assert m.loaded()["a"].device == "cpu" and m.loaded()["a"].load_seconds >= 0


def test_concurrent_first_uses_load_once():
    calls: list[str] = []
    m = ExpertManager(ManagerConfig(budget_mb=1000))
    m.declare(counting("slow", 10, calls, delay=0.2))
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(m.get("slow"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["slow"] and all(g is got[0] for g in got)


def test_least_recently_used_is_evicted_over_budget():
    calls: list[str] = []
    m = ExpertManager(ManagerConfig(budget_mb=100))
    for name in "abc":
        m.declare(counting(name, 40, calls))
    m.get("a"), m.get("b")
    m.get("a")  # b is now the least recently used
    m.get("c")
    assert set(m.loaded()) == {"a", "c"}
    m.get("b")
    assert set(m.loaded()) == {"c", "b"} and calls == ["a", "b", "c", "b"]


def test_a_model_larger_than_the_budget_still_loads_alone():
    calls: list[str] = []
    m = ExpertManager(ManagerConfig(budget_mb=10))
    m.declare(counting("small", 5, calls))
    m.declare(counting("huge", 50, calls))
    m.get("small"), m.get("huge")
    assert set(m.loaded()) == {"huge"}


def test_unknown_model_names_the_declared_ones():
    m = ExpertManager()
    m.declare(counting("a", 1, []))
    with pytest.raises(KeyError, match="declared: a"):
        m.get("b")


def test_device_choice():
    auto = ExpertManager(ManagerConfig(device="auto"))
    assert auto.device_for(wants_gpu=False) == "cpu"
    assert auto.device_for(wants_gpu=True) == ("cuda" if cuda_available() else "cpu")
    assert ExpertManager(ManagerConfig(device="cpu")).device_for(wants_gpu=True) == "cpu"


def test_routing_picks_the_cheapest_applicable_and_records_it():
    tool = "test_manager_routing"
    implements(tool, "exact", applies=lambda size, **_: size <= 100, cost=lambda size, **_: size * 1.0)(lambda **_: "exact")
    implements(tool, "tiled", cost=lambda size, **_: 50.0 + size * 0.1)(lambda **_: "tiled")
    implements(tool, "never", applies=lambda **_: False, cost=lambda **_: 0.0)(lambda **_: "never")
    impl, decision = choose(tool, size=10)
    assert impl.name == "exact" and impl.run() == "exact"
    assert decision.costs == {"exact": 10.0, "tiled": 51.0}  # 'never' did not apply
    meta = decision.as_meta()
    assert (meta["tool"], meta["expert"], meta["costs"], meta["policy"]) == (tool, "exact", {"exact": 10.0, "tiled": 51.0}, "cost")
    assert choose(tool, size=80)[0].name == "tiled"
    assert choose(tool, size=1000)[1].costs == {"tiled": 150.0}
    assert [i.name for i in implementations(tool)] == ["exact", "tiled", "never"]
    with pytest.raises(LookupError, match="no expert for 'nothing_here'"):
        choose("nothing_here")


def test_segment_targets_route_to_their_experts():
    assert choose("segment", target=parse_target("person"))[1].chosen == "selfie-segmentation"
    assert choose("segment", target=parse_target("the red one"))[1].chosen == "colour-regions"
    assert choose("segment", target=parse_target("sky"))[1].chosen == "sky-colour-position"


def test_real_models_load_once_per_process_on_cpu(photos):
    detect_faces(image=photos["astronaut"])
    before = manager().loads.count("mediapipe.face_detection")
    for name in ("grace_hopper", "coffee"):
        detect_faces(image=photos[name])
    assert manager().loads.count("mediapipe.face_detection") == before >= 1
    assert manager().loaded()["mediapipe.face_detection"].device == "cpu"  # mediapipe's CPU graphs never ask for a GPU


def test_settings_come_from_the_environment_with_clear_errors(monkeypatch):
    monkeypatch.setenv("BANANA_THREADS", "2")
    monkeypatch.setenv("BANANA_EXPERT_BUDGET_MB", "123")
    assert ExpertManager().config == ManagerConfig(threads=2, budget_mb=123)
    monkeypatch.setenv("BANANA_THREADS", "lots")
    with pytest.raises(ValueError, match="BANANA_THREADS='lots'"):
        _ = ExpertManager().config
