"""Name resolution, offline, against the programs' own targets and their aliases: the plan
carries aliases into the catalog (migration 0014, SQLite and PostgreSQL), ``GET /resolve``
answers MAST's name-lookup fields, an unknown name is a 404 with the closest names, and
``/observations?target_name=`` accepts an alias."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from services.archive.app import create_app
from shared.catalog import Catalog
from shared.catalog.queries import upsert_program
from shared.config import Settings
from shared.plan import Plan, Target, target_key
from tests.telemetry_factory import tiny_plan

GALAXY = Target(id=1, name="NGC 1234", ra=53.16, dec=-27.78, aliases=["UGC 2345", "Example Galaxy"])
CLUSTER = Target(id=2, name="Omega Centauri", ra=201.697, dec=-47.4795, aliases=["NGC 5139"])


def _plan(program: str, targets: list[Target], target_id: int = 1) -> Plan:
    plan = tiny_plan(program=program)
    obs = plan.observations[0].model_copy(update={"target_id": target_id})
    return Plan.model_validate({**plan.model_dump(), "targets": [t.model_dump() for t in targets],
                                "observations": [obs.model_dump()]})


@pytest.fixture(params=["sqlite", "postgresql"])
def api(request, tmp_path):
    url = None if request.param == "sqlite" else request.getfixturevalue("pg_url")
    settings = Settings(var_dir=tmp_path / "var", catalog_url=url, _env_file=None)
    catalog = Catalog(settings.resolved_catalog_url)
    catalog.upgrade()  # through 0012_target_aliases
    with catalog.session() as s:
        upsert_program(s, _plan("01234", [GALAXY, CLUSTER]))  # observes the galaxy
        upsert_program(s, _plan("02345", [GALAXY, CLUSTER], target_id=2))  # observes the cluster
        upsert_program(s, _plan("03456", [GALAXY]))  # the galaxy again, from another program
    with TestClient(create_app(settings)) as client:
        yield client
    catalog.dispose()


def test_target_key_ignores_case_spaces_and_punctuation():
    assert target_key("NGC 1234") == target_key("ngc1234") == target_key("N.G.C.-1234") == "ngc1234"
    assert target_key("Ｍ３１") == "m31"  # full-width forms
    assert target_key("NGC 1234") != target_key("NGC 12345")


def test_resolves_by_name_with_programs_and_position(api):
    r = api.get("/resolve", params={"name": "ngc1234"})
    assert r.status_code == 200
    body = r.json()
    assert body["searchString"] == "ngc1234" and body["status"] == ""
    [row] = body["resolvedCoordinate"]
    assert row["canonicalName"] == "NGC 1234" and (row["ra"], row["decl"]) == (53.16, -27.78)
    assert row["programs"] == ["01234", "03456"] and row["proposal_id"] == ["1234", "3456"]
    assert row["matchedAlias"] is None and row["resolver"] == "jwst-dms" and row["searchString"] == "ngc1234"
    assert row["aliases"] == ["UGC 2345", "Example Galaxy"]


@pytest.mark.parametrize("name,alias", [("UGC 2345", "UGC 2345"), ("ugc-2345", "UGC 2345"),
                                        ("  EXAMPLE   galaxy ", "Example Galaxy"), ("ngc_5139", "NGC 5139")])
def test_resolves_by_alias_in_any_spelling(api, name, alias):
    r = api.get("/resolve", params={"name": name})
    assert r.status_code == 200, r.text
    [row] = r.json()["resolvedCoordinate"]
    assert row["matchedAlias"] == alias
    assert row["canonicalName"] == ("Omega Centauri" if alias == "NGC 5139" else "NGC 1234")


def test_unknown_name_is_a_404_with_the_closest_names(api):
    r = api.get("/resolve", params={"name": "NGC 1243"})  # two digits swapped
    assert r.status_code == 404
    body = r.json()
    assert body["suggestions"][0] == "NGC 1234" and "NGC 1234" in body["detail"]
    r = api.get("/resolve", params={"name": "Omega Centaur"})
    assert r.status_code == 404 and r.json()["suggestions"][0] == "Omega Centauri"
    r = api.get("/resolve", params={"name": "Betelgeuse"})
    assert r.status_code == 404 and r.json()["suggestions"] == []
    assert "no similar name" in r.json()["detail"]
    assert api.get("/resolve", params={"name": ""}).status_code == 400
    assert api.get("/resolve").status_code == 400


def test_observations_accept_an_alias_as_target_name(api):
    def programs(**params) -> list[str]:
        r = api.get("/observations", params={"include_planned": "true", **params})
        assert r.status_code == 200, r.text
        return sorted(row["proposal_id"] for row in r.json()["rows"])

    assert programs(target_name="NGC 1234") == ["1234", "3456"]
    assert programs(target_name="Example Galaxy") == ["1234", "3456"]
    assert programs(target_name="ngc5139") == ["2345"]
    assert programs(target_name="NGC 5139,UGC 2345") == ["1234", "2345", "3456"]
    assert programs(target_name="!ugc2345") == ["2345"]
    assert programs(target_name="NGC*") == ["1234", "3456"]  # wildcards match the names as before
    assert programs(target_name="Betelgeuse") == []


def test_plan_refuses_ambiguous_aliases():
    with pytest.raises(ValidationError, match="again"):
        Target(id=1, name="NGC 1234", ra=1.0, dec=1.0, aliases=["ngc-1234"])
    with pytest.raises(ValidationError, match="again"):
        Target(id=1, name="A", ra=1.0, dec=1.0, aliases=["B b", "bb"])
    with pytest.raises(ValidationError, match="letter or digit"):
        Target(id=1, name="A", ra=1.0, dec=1.0, aliases=["--"])
    other = Target(id=2, name="Other", ra=2.0, dec=2.0, aliases=["UGC 2345"])
    with pytest.raises(ValidationError, match="also a name or alias of target 'NGC 1234'"):
        _plan("01234", [GALAXY, other])
    assert Target(id=1, name="A", ra=1.0, dec=1.0, aliases=["  Big   Galaxy "]).aliases == ["Big Galaxy"]


def test_example_program_shows_an_alias():
    from pathlib import Path

    import yaml

    from services.simulator.description import ProgramDescription

    example = Path(__file__).resolve().parents[1] / "examples" / "nircam_imaging.yaml"
    desc = ProgramDescription.model_validate(yaml.safe_load(example.read_text()))
    assert desc.targets[0].aliases == ["Hubble Ultra Deep Field"]
