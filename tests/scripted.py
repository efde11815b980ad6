"""Test plumbing shared by the loop and self-play tests: a planner backend that always answers one fixed plan."""

from __future__ import annotations

import json

from banana.agent.planner.base import PlanRequest


class Scripted:
    """A planner backend (the json surface) that always answers the same plan."""

    name = "scripted"
    surface = "json"

    def __init__(self, plan: dict) -> None:
        self.plan = json.dumps(plan)

    def generate(self, request: PlanRequest, previous: str = "", problems: list[str] | None = None) -> str:
        return self.plan
