"""astroquery.mast as a user runs it, in a process of its own: ``python -m
tests.astroquery_client <phase> <workdir> [token]`` prints what the calls returned as JSON.

The process finds the archive through astroquery's own configuration only (the
``astroquery.cfg`` under ``$XDG_CONFIG_HOME/astropy``, written by tests/test_mast_protocol.py):
astroquery reads its server when it is first imported, so the configuration must be in
place before that, hence a process per run. Nothing of astroquery is patched.
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np


def _value(v: Any) -> Any:
    if v is np.ma.masked or isinstance(v, np.ma.core.MaskedConstant):
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, bytes):
        return v.decode()
    return v


def rows(table) -> list[dict[str, Any]]:
    if table is None:
        return []
    return [{c: _value(r[c]) for c in table.colnames} for r in table]


def _error(call) -> str:
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - the test reads which error and its message
        return f"{type(exc).__name__}: {exc}"
    return "no error"


def anonymous(workdir: Path) -> dict[str, Any]:
    from astropy.coordinates import SkyCoord
    from astroquery.exceptions import NoResultsWarning
    from astroquery.mast import Mast, Observations

    out: dict[str, Any] = {"whoami": Observations.session_info(verbose=False)}
    out["metadata_observations"] = rows(Observations.get_metadata("observations"))
    out["metadata_products"] = rows(Observations.get_metadata("products"))
    observations = Observations.query_criteria(proposal_id="1234")
    out["criteria"] = rows(observations)
    out["criteria_level3"] = rows(Observations.query_criteria(proposal_id="1234", calib_level=3))
    out["criteria_instrument"] = rows(Observations.query_criteria(instrument_name="NIRCAM*", obs_collection="JWST"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoResultsWarning)
        out["criteria_other_mission"] = rows(Observations.query_criteria(obs_collection="HST"))
    out["count"] = int(Observations.query_criteria_count(proposal_id="1234"))
    level3 = next(r for r in out["criteria"] if r["calib_level"] == 3)
    centre = SkyCoord(level3["s_ra"], level3["s_dec"], unit="deg")
    out["region"] = rows(Observations.query_region(centre, radius="0.05 deg"))
    out["region_far"] = rows(Observations.query_region(SkyCoord(level3["s_ra"], level3["s_dec"] + 5, unit="deg"),
                                                      radius=0.05))
    out["criteria_position"] = rows(Observations.query_criteria(coordinates=centre, radius=0.05, calib_level=3))
    exposure = next(r for r in out["criteria"] if r["calib_level"] != 3)
    products_level3 = Observations.get_product_list(level3["obsid"])
    out["products_level3"] = rows(products_level3)
    out["products_exposure"] = rows(Observations.get_product_list(exposure["obsid"]))
    out["products_table"] = rows(Observations.get_product_list(observations))
    mrp = Observations.filter_products(products_level3, mrp_only=True)
    out["mrp_level3"] = rows(mrp)
    manifest = Observations.download_products(mrp, download_dir=str(workdir / "anonymous"), cache=False)
    out["manifest_anonymous"] = rows(manifest)
    # errors as astroquery shows them
    out["error_bad_range"] = _error(lambda: Observations.query_criteria(proposal_id="1234", t_min=["soon", "later"]))
    out["error_bad_value"] = _error(lambda: Observations.query_criteria(proposal_id="not-a-program"))
    out["error_service"] = _error(lambda: Mast.service_request("Mast.Caom.Nothing", {}))
    out["error_products_obs_id"] = _error(lambda: Observations.get_product_list(level3["obs_id"]))
    return out


def names(workdir: Path, target: str, alias: str) -> dict[str, Any]:
    """query_object and objectname criteria: astroquery 0.4.11 resolves names at MAST's
    resolver host, which this process reaches through the archive (its proxy setting)."""
    from astroquery.mast import Mast, Observations

    out: dict[str, Any] = {"object": rows(Observations.query_object(target, radius=0.05))}
    out["object_alias"] = rows(Observations.query_object(alias, radius="0.05 deg"))
    out["criteria_objectname"] = rows(Observations.query_criteria(objectname=target, radius=0.05, calib_level=3))
    out["lookup"] = rows(Mast.service_request("Mast.Name.Lookup", {"input": alias, "format": "json"}))
    out["error_unknown"] = _error(lambda: Observations.query_object("No Such Field Anywhere"))
    return out


def token(workdir: Path, secret: str) -> dict[str, Any]:
    from astroquery.mast import Observations

    Observations.login(token=secret)
    out: dict[str, Any] = {}
    out["whoami"] = Observations.session_info(verbose=False)
    observations = Observations.query_criteria(proposal_id="1234")
    products = Observations.get_product_list(observations)
    mrp = Observations.filter_products(products, mrp_only=True)
    out["mrp"] = rows(mrp)
    out["manifest"] = rows(Observations.download_products(mrp, download_dir=str(workdir / "token"), cache=False))
    return out


def bad_token(workdir: Path, secret: str) -> dict[str, Any]:
    from astroquery.mast import Observations

    return {"error_login": _error(lambda: Observations.login(token=secret))}


def public(workdir: Path) -> dict[str, Any]:
    from astroquery.mast import Observations

    level3 = Observations.query_criteria(proposal_id="1234", calib_level=3)
    products = Observations.get_product_list(level3)
    manifest = Observations.download_products(products, download_dir=str(workdir / "public"), cache=False,
                                              productType="SCIENCE", extension="fits")
    out = {"rows": rows(level3), "manifest": rows(manifest)}
    script = Observations.download_products(products, download_dir=str(workdir), curl_flag=True, mrp_only=True)
    out["curl"] = rows(script)
    return out


def main(argv: list[str]) -> int:
    phase, workdir = argv[0], Path(argv[1])
    args = argv[2:]
    result = {"anonymous": anonymous, "names": names, "token": token, "bad_token": bad_token, "public": public}[phase](workdir, *args)
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
