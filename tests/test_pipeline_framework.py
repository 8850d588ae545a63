"""The declared-steps framework (shared.pipeline) on a toy pipeline, and the facts every
real pipeline derives from its declarations."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict, Field

from shared.pipeline import (
    NoParams,
    Pipeline,
    Skip,
    SkipKind,
    Step,
    StepArgs,
    StepFailed,
    UnknownStepError,
    for_each_part,
    provenance_cards,
)


@dataclass
class Toy:
    value: float = 1.0
    ndim: int = 2
    log: list[str] = field(default_factory=list)


class ScaleParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    factor: float = Field(2.0, gt=0, description="Multiplier.")
    window: tuple[int, int] = Field((1, 2), description="Two numbers.")


@dataclass
class Ref:
    filename: str
    released: int = 0

    def release(self) -> None:
        self.released += 1


def _scale(s: Toy, a: StepArgs) -> Skip | None:
    s.value *= a.params.factor
    s.log.append(f"scale {a.params.window}")
    return None


def _flat(s: Toy, a: StepArgs) -> Skip | None:
    s.log.append(f"flat {sorted(a.refs)}")
    return None


def _nothing(s: Toy, a: StepArgs) -> Skip | None:
    a.note("looked, found nothing")
    return Skip("nothing to do here")


def _broken(s: Toy, a: StepArgs) -> Skip | None:
    raise StepFailed("the fit diverged")


def _deprecated(s: Toy, a: StepArgs) -> Skip | None:
    s.log.append("deprecated ran")
    return None


TOY = Pipeline(
    name="toy",
    title="a toy pipeline",
    steps=(
        Step("group_scale", "S_GRPSCL", _scale, params=ScaleParams),
        Step("flat_field", "S_FLAT", _flat, reftypes=("flat",), optional_reftypes=("area",)),
        Step("superbias", "S_SUPERB", _nothing, instruments=frozenset({"NIRCAM"})),
        Step("photom", "S_PHOTOM", _broken, except_exp_types=frozenset({"NRC_DARK"})),
        Step("firstframe", "S_FRSTFR", _deprecated, skip_by_default=True),
        Step("resample", "S_RESAMP", _scale, params=ScaleParams, when=lambda s: s.ndim == 2),
    ),
)
NIRCAM = {"INSTRUME": "NIRCAM", "EXP_TYPE": "NRC_IMAGE", "FILENAME": "x_rate.fits"}


def test_runner_records_every_outcome_with_a_typed_reason(caplog):
    state = Toy()
    with caplog.at_level(logging.INFO, logger="shared.pipeline"):
        record = TOY.run(state, NIRCAM, {"flat": Ref("f.fits"), "area": Ref("a.fits")})
    assert record.statuses == {"group_scale": "COMPLETE", "flat_field": "COMPLETE", "superbias": "SKIPPED",
                               "photom": "FAILED", "firstframe": "SKIPPED", "resample": "COMPLETE"}
    assert state.value == 4.0 and state.log == ["scale (1, 2)", "flat ['area', 'flat']", "scale (1, 2)"]
    assert record.results["superbias"].kind is SkipKind.NOT_APPLICABLE
    assert record.results["firstframe"].reason == "skipped by default"
    assert record.results["photom"].reason == "the fit diverged"
    assert "looked, found nothing" in record.notes and "photom failed: the fit diverged" in record.notes
    timing = [r.getMessage() for r in caplog.records if " steps took " in r.getMessage()]
    levels = {r.getMessage().split(": ", 1)[1].split()[0]: r.levelno for r in caplog.records
              if " steps took " not in r.getMessage()}
    assert levels == {"superbias": logging.INFO, "photom": logging.WARNING, "firstframe": logging.INFO}
    # how long each step of the run took, recorded and logged once at the end
    assert list(record.seconds) == list(record.results) and all(t >= 0 for t in record.seconds.values())
    assert len(timing) == 1 and "group_scale" in timing[0] and "resample" in timing[0]
    assert record.references == {"flat": "f.fits", "area": "a.fits"}
    assert record.status_cards("flat_field") == {"S_GRPSCL": "COMPLETE", "S_FLAT": "COMPLETE"}
    assert record.reference_cards() == {"R_FLAT": "crds://f.fits", "R_AREA": "crds://a.fits"}
    assert record.reference_cards("group_scale") == {"R_FLAT": "N/A", "R_AREA": "N/A"}
    assert record.reference_uris() == ["crds://f.fits", "crds://a.fits"]


def test_after_step_sees_each_step_with_the_record_so_far():
    state = Toy()
    seen = []

    def after(name, record):
        seen.append((name, list(record.results), state.value))

    TOY.run(state, NIRCAM, {"flat": Ref("f.fits")}, after_step=after)
    # every step that applies, skipped or failed too, once it is recorded and before the next runs
    assert seen == [("group_scale", ["group_scale"], 2.0),
                    ("flat_field", ["group_scale", "flat_field"], 2.0),
                    ("superbias", ["group_scale", "flat_field", "superbias"], 2.0),
                    ("photom", ["group_scale", "flat_field", "superbias", "photom"], 2.0),
                    ("firstframe", ["group_scale", "flat_field", "superbias", "photom", "firstframe"], 2.0),
                    ("resample", ["group_scale", "flat_field", "superbias", "photom", "firstframe", "resample"],
                     4.0)]
    seen.clear()
    TOY.run(Toy(ndim=3), NIRCAM, {"flat": Ref("f.fits")}, after_step=after)
    assert "resample" not in [name for name, *_ in seen]  # its `when` said no: not a step of this run


def test_each_step_releases_its_references_when_it_ends(tmp_path):
    flat, area = Ref("f.fits"), Ref("a.fits")
    TOY.run(Toy(), NIRCAM, {"flat": flat, "area": area})
    assert (flat.released, area.released) == (1, 1)  # read for flat_field, not held for the rest of the run

    from astropy.io import fits

    from shared.refdata import Window, load_reference

    path = tmp_path / "gain.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.arange(64.0, dtype=">f4").reshape(8, 8), name="SCI")]).writeto(path)
    ref = load_reference("gain", path, Window(3, 2, 4, 5), (8, 8))
    assert ref.extensions == ("SCI",) and ref._arrays == {}  # checked, not yet read
    sci = ref.get("SCI")
    assert sci.shape == (5, 4) and sci.dtype == np.dtype("=f4") and sci[0, 0] == 10.0
    ref.release()
    assert ref._arrays == {} and ref.get("SCI")[0, 0] == 10.0


def test_missing_reference_skips_with_a_warning_and_applicability_follows_the_declarations(caplog):
    dark = {"INSTRUME": "MIRI", "EXP_TYPE": "NRC_DARK", "FILENAME": "d_uncal.fits"}
    with caplog.at_level(logging.INFO, logger="shared.pipeline"):
        record = TOY.run(Toy(ndim=3), dark, {"area": Ref("a.fits")})
    # superbias is NIRCAM only, photom not for darks, resample not for cubes: none recorded
    assert list(record.statuses) == ["group_scale", "flat_field", "firstframe"]
    flat = record.results["flat_field"]
    assert (flat.status, flat.reason, flat.kind) == ("SKIPPED", "no FLAT reference", SkipKind.NO_REFERENCE)
    assert any(r.levelno == logging.WARNING and "no FLAT reference" in r.getMessage() for r in caplog.records)
    assert record.references == {} and record.reference_cards() == {"R_FLAT": "N/A", "R_AREA": "N/A"}
    assert TOY.reftypes(dark) == ("flat", "area") and TOY.all_reftypes == ("flat", "area")
    assert [s.name for s in TOY.sequence(NIRCAM)] == list(TOY.step_names)


def test_parameters_are_validated_against_the_declarations():
    p = TOY.params(skip=["photom"], steps={"group_scale": {"factor": "3", "window": "4 5"},
                                           "firstframe": {"skip": "false"}})
    assert p.skip == {"photom"} and p.step("group_scale").factor == 3.0 and p.step("group_scale").window == (4, 5)
    state = Toy()
    record = TOY.run(state, NIRCAM, {"flat": Ref("f.fits")}, p)
    assert record.statuses["firstframe"] == "COMPLETE" and record.results["photom"].reason == "skipped by parameter"
    assert state.value == 6.0  # group_scale x3, resample keeps its default x2
    with pytest.raises(UnknownStepError, match="unknown step.*jmup; toy steps: group_scale, flat_field"):
        TOY.params(skip=["jmup"])
    with pytest.raises(UnknownStepError, match="unknown step"):
        TOY.params(steps={"jmup": {"x": 1}})
    with pytest.raises(UnknownStepError, match="toy.group_scale has no parameter fctor"):
        TOY.params(steps={"group_scale": {"fctor": 1}})
    with pytest.raises(UnknownStepError, match="toy.group_scale: factor"):
        TOY.params(steps={"group_scale": {"factor": -1}})
    with pytest.raises(UnknownStepError, match="must be true or false"):
        TOY.params(steps={"flat_field": {"skip": "maybe"}})
    with pytest.raises(UnknownStepError, match="toy: save_everything"):
        TOY.params(save_everything=True)
    with pytest.raises(ValueError, match="parameters of other given to toy"):
        TOY.run(Toy(), NIRCAM, {}, Pipeline("other", "other", ()).params())


def test_declarations_are_checked_when_made():
    with pytest.raises(ValueError, match="S_NOPE is not a cal_step keyword"):
        Step("x", "S_NOPE", _scale)
    with pytest.raises(KeyError, match="no R_\\* keyword for reference type 'flux'"):
        Step("x", "S_FLAT", _scale, reftypes=("flux",))
    with pytest.raises(ValueError, match="declared twice with different parameters"):
        Pipeline("p", "p", (Step("refpix", "S_REFPIX", _scale, params=ScaleParams), Step("refpix", "S_REFPIX", _scale)))
    twice = Pipeline("p", "p", (Step("refpix", "S_REFPIX", _scale), Step("refpix", "S_REFPIX", _scale)))
    with pytest.raises(ValueError, match="applies twice"):
        twice.sequence(NIRCAM)


def test_provenance_cards():
    assert provenance_cards(software_version="1.2", context=None) == {
        "CAL_VER": "1.2", "CAL_VCS": "RELEASE", "CRDS_VER": "1.2", "CRDS_CTX": "N/A"}
    cards = provenance_cards(software_version="1.2", context="dms_0003.ctx", created="2026-01-01T00:00:00",
                             asn_table="a_asn.json", asn_pool="p.csv")
    assert cards["CRDS_CTX"] == "dms_0003.ctx" and cards["DATE"] == "2026-01-01T00:00:00"
    assert (cards["ASNTABLE"], cards["ASNPOOL"]) == ("a_asn.json", "p.csv")


def test_the_real_pipelines_follow_the_public_step_orders():
    from services.detector1.pipeline import DETECTOR1
    from services.stage2.pipeline import IMAGE2
    from services.stage2.spec2 import SPEC2
    from services.stage3.pipeline import IMAGE3, TSO3

    def names(pipeline, **kw):
        return [s.name for s in pipeline.sequence(kw)]

    assert names(DETECTOR1, INSTRUME="NIRCAM", EXP_TYPE="NRC_IMAGE") == [
        "group_scale", "dq_init", "saturation", "superbias", "refpix", "linearity", "persistence", "dark_current",
        "jump", "ramp_fit"]
    assert names(DETECTOR1, INSTRUME="MIRI", EXP_TYPE="MIR_IMAGE") == [
        "group_scale", "dq_init", "saturation", "firstframe", "lastframe", "linearity", "rscd", "dark_current",
        "refpix", "jump", "ramp_fit"]
    assert names(DETECTOR1, INSTRUME="MIRI", EXP_TYPE="MIR_DARKIMG") == [
        "group_scale", "dq_init", "saturation", "firstframe", "lastframe", "linearity", "rscd"]
    assert names(IMAGE2, INSTRUME="NIRCAM") == ["bkg_subtract", "assign_wcs", "flat_field", "photom", "resample"]
    assert IMAGE2.all_reftypes == ("distortion", "filteroffset", "flat", "photom", "area")
    assert IMAGE3.step_names == ("tweakreg", "skymatch", "outlier_detection", "resample", "source_catalog")
    assert TSO3.step_names == ("outlier_detection", "tso_photometry", "pixel_replace", "extract_1d", "photom",
                               "white_light")
    assert names(TSO3, EXP_TYPE="NRC_TSIMAGE") == ["outlier_detection", "tso_photometry"]
    assert names(TSO3, EXP_TYPE="MIR_LRS-SLITLESS") == [
        "outlier_detection", "tso_photometry", "pixel_replace", "extract_1d", "white_light"]
    assert names(SPEC2, EXP_TYPE="MIR_LRS-SLITLESS") == [
        "bkg_subtract", "assign_wcs", "flat_field", "srctype", "photom", "extract_1d"]
    # NIRISS SOSS: photom calibrates the extracted spectra, after extract_1d (the public order)
    assert names(SPEC2, EXP_TYPE="NIS_SOSS") == [
        "bkg_subtract", "assign_wcs", "flat_field", "srctype", "extract_1d", "photom"]
    assert names(TSO3, EXP_TYPE="NIS_SOSS") == [
        "outlier_detection", "tso_photometry", "pixel_replace", "extract_1d", "photom", "white_light"]
    assert SPEC2.reftypes({"EXP_TYPE": "NIS_SOSS"}) == ("spectrace", "flat", "photom")
    with pytest.raises(UnknownStepError, match="unknown step.*jmup"):
        DETECTOR1.params(skip={"jmup"})  # refused in every pipeline, detector1 included


@dataclass
class _Whole:
    name: str
    value: int = 0
    parts: list[_Whole] = field(default_factory=list)


def test_a_step_of_one_part_runs_on_every_part_and_names_it_in_its_notes():
    """``for_each_part``: a MOS exposure's slitlets or a MOS association's sources each get
    the step; a state without parts gets it itself; skipped only when every part skipped."""

    @for_each_part(lambda s: s.parts, lambda s: f"part {s.name}")
    def double(s: _Whole, a: StepArgs) -> Skip | None:
        if s.value < 0:
            return Skip(f"{s.name} is negative")
        s.value *= 2
        a.note(f"now {s.value}")
        return None

    def args() -> StepArgs:
        return StepArgs(refs={}, params=NoParams(), options=NoParams(), keywords={}, notes=[])

    whole = _Whole("w", parts=[_Whole("a", 1), _Whole("b", -1), _Whole("c", 3)])
    a = args()
    assert double(whole, a) is None
    assert [p.value for p in whole.parts] == [2, -1, 6]
    assert a.notes == ["part a: now 2", "part b: skipped: b is negative", "part c: now 6"]
    assert double(_Whole("alone", 5), a2 := args()) is None and a2.notes == ["now 10"]
    skipped = double(_Whole("w", parts=[_Whole("x", -1), _Whole("y", -2)]), args())
    assert skipped == Skip("x is negative")
