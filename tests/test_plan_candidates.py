"""Proposal candidates (c1NNN) in the program description and the plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from services.simulator import DescriptionError, build_plan, load_description, simulate
from shared.plan import Plan, PlannedCandidate, candidate_id

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def description(candidates: list[dict], background: tuple[int, ...] = (3,)) -> dict:
    desc = yaml.safe_load((EXAMPLES / "nircam_mosaic_background.yaml").read_text())
    for obs in desc["observations"]:
        obs["is_background"] = obs["number"] in background
    desc["candidates"] = candidates
    return desc


def test_example_candidates_get_ids_in_order():
    plan = build_plan(load_description(EXAMPLES / "nircam_mosaic_background.yaml"))
    assert [(c.id, c.type, c.observations) for c in plan.candidates] == [
        ("c1000", "MOSAIC", [1, 2]), ("c1001", "BACKGROUND", [1, 3]),
    ]
    assert [c.id for c in plan.candidates_of(1)] == ["c1000", "c1001"]
    assert [c.id for c in plan.candidates_of(3)] == ["c1001"]
    assert plan.observation(3).is_background and not plan.observation(2).is_background
    assert [candidate_id(k) for k in (0, 1, 999)] == ["c1000", "c1001", "c1999"]


def test_type_is_case_insensitive():
    desc = description([{"type": "Mosaic", "observations": [1, 2]}, {"type": "BACKGROUND", "observations": [2, 3]}])
    plan = build_plan(load_description(desc))
    assert [c.type for c in plan.candidates] == ["MOSAIC", "BACKGROUND"]


@pytest.mark.parametrize(
    ("candidates", "background", "words"),
    [
        ([{"type": "mosaic", "observations": [1, 7]}], (3,), ["candidates[0].observations", "[7]"]),
        ([{"type": "mosaic", "observations": [1]}], (3,), ["candidates[0].observations", "at least 2"]),
        ([{"type": "mosaic", "observations": [1, 2]}, {"type": "background", "observations": [1, 2]}], (3,),
         ["candidates[1].observations", "is_background"]),
        ([{"type": "background", "observations": [3]}], (3,), ["candidates[0].observations", "science"]),
        ([{"type": "background", "observations": [1, 1, 3]}], (3,), ["candidates[0].observations", "twice"]),
        ([{"type": "group", "observations": [1, 2]}], (3,), ["candidates[0].type", "mosaic, background"]),
        ([{"type": "mosaic", "observations": [], }], (3,), ["candidates[0].observations"]),
    ],
)
def test_bad_candidates_name_the_field(candidates, background, words):
    with pytest.raises(DescriptionError) as info:
        load_description(description(candidates, background))
    for word in words:
        assert word in str(info.value)


def test_plan_validates_candidates_and_old_plans_still_load(tmp_path):
    desc = description([{"type": "mosaic", "observations": [1, 2]}])
    desc["simulation"].update(write_references=False)
    for obs in desc["observations"]:
        obs["dither"] = {"pattern": "NONE"}
    result = simulate(desc, tmp_path / "sim")
    data = json.loads(result.plan_path.read_text())
    assert data["candidates"] == [{"id": "c1000", "type": "MOSAIC", "observations": [1, 2]}]
    assert Plan.model_validate(data).candidates == result.plan.candidates
    old = {k: v for k, v in data.items() if k != "candidates"}  # a plan written before candidates existed
    assert Plan.model_validate(old).candidates == []
    bad = dict(data, candidates=[{"id": "c1000", "type": "background", "observations": [1, 2]}])
    with pytest.raises(ValidationError, match=r"candidates\[0\]\.observations.*is_background"):
        Plan.model_validate(bad)
    with pytest.raises(ValidationError, match="id"):
        PlannedCandidate(id="a3001", type="MOSAIC", observations=[1, 2])
