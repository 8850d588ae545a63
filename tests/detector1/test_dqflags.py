"""The DQ table matches jwst-conventions.md §1, and every declared step parameter model is sane."""

from __future__ import annotations

import importlib
import inspect

import pytest
from pydantic import BaseModel, ValidationError

from shared.datamodels import dqflags

from .conftest import DQFLAGS

STEP_MODULES = [
    "group_scale",
    "dq_init",
    "saturation",
    "superbias",
    "refpix",
    "linearity",
    "persistence",
    "dark_current",
    "miri_frames",
    "rscd",
    "jump",
    "ramp_fit",
]


def test_pixel_flags_match_reference():
    for name, value in DQFLAGS.items():
        assert dqflags.PIXEL[name] == value
    assert len(dqflags.PIXEL) == 33
    assert dqflags.PIXEL["NONLINEAR"] == 2**16
    assert dqflags.PIXEL["UNRELIABLE_FLAT"] == 2**25
    assert dqflags.PIXEL["OTHER_BAD_PIXEL"] == 2**30
    # single bits, all distinct
    bits = [v for k, v in dqflags.PIXEL.items() if k != "GOOD"]
    assert all(v & (v - 1) == 0 for v in bits) and len(set(bits)) == len(bits)


def test_group_flags_are_the_8_bit_subset():
    assert set(dqflags.GROUP) == {
        "GOOD", "DO_NOT_USE", "SATURATED", "JUMP_DET", "DROPOUT", "PERSISTENCE", "AD_FLOOR", "CHARGELOSS",
    }
    assert all(dqflags.GROUP[k] == dqflags.PIXEL[k] < 256 for k in dqflags.GROUP)


def test_tables_are_read_only():
    with pytest.raises(TypeError):
        dqflags.PIXEL["GOOD"] = 5  # type: ignore[index]


def _param_models(module):
    return [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, BaseModel) and obj.__module__ == module.__name__
    ]


def _declared_models():
    from services.detector1.pipeline import DETECTOR1
    from services.stage2.pipeline import IMAGE2
    from services.stage3.pipeline import IMAGE3, TSO3

    return {f"{p.name}.{s.name}": s.params for p in (DETECTOR1, IMAGE2, IMAGE3, TSO3) for s in p.steps}


def test_declared_param_models_are_frozen_with_described_defaults():
    for where, model in _declared_models().items():
        instance = model()  # every field has a default
        for field_name, field in model.model_fields.items():
            assert field.description, f"{where}: {model.__name__}.{field_name} has no description"
            with pytest.raises(ValidationError):
                setattr(instance, field_name, getattr(instance, field_name))
        with pytest.raises(ValidationError):
            model(not_a_parameter=1)


@pytest.mark.parametrize("name", STEP_MODULES)
def test_kernel_defaults_equal_model_defaults(name):
    """A kernel keyword named like a field of a step's model defaults to the model's value."""
    module = importlib.import_module(f"services.detector1.steps.{name}")
    defaults = {}
    for model in [*_param_models(module), *_declared_models().values()]:
        if model.__module__ == module.__name__:
            defaults.update({k: f.default for k, f in model.model_fields.items()})
    kernels = [
        obj
        for obj in vars(module).values()
        if inspect.isfunction(obj) and obj.__module__ == module.__name__ and not obj.__name__.startswith("_")
    ]
    for kernel in kernels:
        for pname, param in inspect.signature(kernel).parameters.items():
            if pname in defaults and param.default is not inspect.Parameter.empty:
                assert param.default == defaults[pname], f"{kernel.__name__}({pname}=...)"
