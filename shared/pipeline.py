"""Declared steps and the one runner of every calibration pipeline.

A step is declared once (:class:`Step`): its name, the instruments and exposure types it
applies to, the reference types it reads, its S_* keyword, its parameter model and the
adapter that calls its pure kernel. A pipeline (:class:`Pipeline`) is an ordered tuple of
declarations; the same name may be declared twice at two places when instruments run it
at different points (MIRI's refpix comes after dark_current), as long as no exposure
sees both.

Everything else derives from the declarations: which steps an exposure runs
(:meth:`Pipeline.sequence`), the reference types to select (:meth:`Pipeline.reftypes`),
the parameters and their validation (:meth:`Pipeline.params`, unknown step names are
refused), and the keywords every product carries (:meth:`RunRecord.status_cards`,
:meth:`RunRecord.reference_cards`, :func:`provenance_cards`).

An adapter is ``adapter(state, args) -> Skip | None``: it reads the state the pipeline
passes along, calls its kernel and writes the kernel's results back; it returns None when
the step is COMPLETE, or a :class:`Skip` saying why it did nothing. It raises
:class:`StepFailed` when the step ran and could not finish (the state must then be as it
was: adapters write back only what a kernel returned). A reference the step needs that
was not found skips it before the adapter is called, with a warning.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import logging
import time
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from shared.datamodels.keywords import KEYWORDS, reference_keyword

__all__ = [
    "NoOptions",
    "NoParams",
    "Output",
    "Pipeline",
    "PipelineParams",
    "Recorded",
    "RunRecord",
    "Skip",
    "SkipKind",
    "Step",
    "StepArgs",
    "StepFailed",
    "StepResult",
    "StepStatus",
    "UnknownStepError",
    "for_each_part",
    "provenance_cards",
]

log = logging.getLogger(__name__)

S = TypeVar("S")


class StepStatus(enum.StrEnum):
    """The value of a step's S_* keyword."""

    COMPLETE = "COMPLETE"
    SKIPPED = "SKIPPED"
    FAILED = "FAILED"


class SkipKind(enum.StrEnum):
    """Why a step did nothing; decides how loudly it is logged."""

    PARAMETER = "parameter"  # asked for (or the step's default), INFO
    NO_REFERENCE = "no_reference"  # a reference it needs was not found, WARNING
    NOT_APPLICABLE = "not_applicable"  # nothing to do on this input, INFO
    NO_INPUT = "no_input"  # what it works on was not made by an earlier step, INFO


_LEVELS = {SkipKind.NO_REFERENCE: logging.WARNING}


@dataclass(frozen=True)
class Skip:
    """An adapter's answer when its step did nothing: the reason a person reads."""

    reason: str
    kind: SkipKind = SkipKind.NOT_APPLICABLE


class StepFailed(Exception):
    """A step that ran and could not finish; recorded FAILED and the pipeline goes on."""


class UnknownStepError(ValueError):
    """A step or step parameter that the pipeline does not declare."""


class NoParams(BaseModel):
    """A step without tunable parameters."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class NoOptions(BaseModel):
    """A pipeline without options of its own."""

    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass(frozen=True)
class StepArgs:
    """What an adapter gets besides the state: the references of its declared types that
    were found (by type), its own parameters, the pipeline's options, the exposure's
    keywords and a list to append notes to."""

    refs: Mapping[str, Any]
    params: BaseModel
    options: BaseModel
    keywords: Mapping[str, Any]
    notes: list[str]

    def note(self, text: str) -> None:
        self.notes.append(text)


Adapter = Callable[[S, StepArgs], "Skip | None"]


def for_each_part(parts: Callable[[S], Sequence[S]], name: Callable[[S], str]) -> Callable[[Adapter], Adapter]:
    """A decorator making a step of one part run on every part of a state that has parts
    (``parts``: a MOS exposure's slitlets, a MOS association's sources), its notes each
    prefixed with the part's ``name``; on the state itself when it has none. The step is
    skipped when it skipped every part (the first part's reason)."""

    def decorate(adapter: Adapter) -> Adapter:
        @functools.wraps(adapter)
        def run(s, a: StepArgs) -> Skip | None:
            if not parts(s):
                return adapter(s, a)
            skips = []
            for part in parts(s):
                notes: list[str] = []
                skip = adapter(part, dataclasses.replace(a, notes=notes))
                for text in notes:
                    a.note(f"{name(part)}: {text}")
                if skip is not None:
                    skips.append(skip)
                    a.note(f"{name(part)}: skipped: {skip.reason}")
            return skips[0] if len(skips) == len(parts(s)) else None

        return run

    return decorate


@dataclass(frozen=True)
class Step(Generic[S]):
    """One declared step.

    Parameters
    ----------
    name : str
        The step's name, as in the public pipeline (``dark_current``, ``tweakreg``).
    status_keyword : str
        Its S_* keyword; must be a ``meta.cal_step`` keyword of the data model.
    adapter : callable
        ``adapter(state, args) -> Skip | None``.
    reftypes : tuple of str
        Reference types (lower case) the step needs: SKIPPED without any of them.
    optional_reftypes : tuple of str
        Reference types it uses when they exist.
    params : type of BaseModel
        Its parameter model (frozen, ``extra="forbid"``), defaults as the public pipeline.
    instruments, exp_types : frozenset of str, optional
        Where it applies (None: everywhere); ``except_exp_types`` where it does not.
    when : callable, optional
        ``when(state) -> bool``: a condition on the data (e.g. 2-D images only); a step
        whose condition is false is not run and not recorded.
    skip_by_default : bool
        Skipped unless asked for (a deprecated step).
    """

    name: str
    status_keyword: str
    adapter: Callable[[S, StepArgs], Skip | None]
    reftypes: tuple[str, ...] = ()
    optional_reftypes: tuple[str, ...] = ()
    params: type[BaseModel] = NoParams
    instruments: frozenset[str] | None = None
    exp_types: frozenset[str] | None = None
    except_exp_types: frozenset[str] = frozenset()
    when: Callable[[S], bool] | None = None
    skip_by_default: bool = False

    def __post_init__(self) -> None:
        kw = KEYWORDS.get(self.status_keyword)
        if kw is None or not kw.path.startswith("meta.cal_step."):
            raise ValueError(f"step {self.name}: {self.status_keyword} is not a cal_step keyword of the data model")
        for reftype in self.reftypes + self.optional_reftypes:
            reference_keyword(reftype)  # raises for a type the data model has no R_* keyword for

    def applies(self, keywords: Mapping[str, Any]) -> bool:
        """Whether this step is part of the run for an exposure with these keywords."""
        instrument = str(keywords.get("INSTRUME") or "").upper()
        exp_type = str(keywords.get("EXP_TYPE") or "").upper()
        if self.instruments is not None and instrument not in self.instruments:
            return False
        if self.exp_types is not None and exp_type not in self.exp_types:
            return False
        return exp_type not in self.except_exp_types

    @property
    def all_reftypes(self) -> tuple[str, ...]:
        return self.reftypes + self.optional_reftypes


@dataclass(frozen=True)
class PipelineParams:
    """Validated parameters of one run: the steps to skip, each declared step's
    parameters (defaults where not given), and the pipeline's options."""

    pipeline: str
    skip: frozenset[str]
    steps: Mapping[str, BaseModel]
    options: BaseModel

    def step(self, name: str) -> BaseModel:
        return self.steps[name]


@dataclass(frozen=True)
class StepResult:
    """How one step ended: its S_* keyword and status and, unless COMPLETE, the reason and
    its kind; the reference files it used ({type: file name}, when COMPLETE)."""

    keyword: str
    status: StepStatus
    reason: str | None = None
    kind: SkipKind | None = None
    references: Mapping[str, str] = field(default_factory=dict)


@dataclass
class RunRecord:
    """What the runner recorded: every step that was part of the run, in order, with how
    it ended, and notes; ``reftypes`` are the reference types of the run's steps;
    ``seconds`` how long each step took (wall clock)."""

    pipeline: str
    results: dict[str, StepResult] = field(default_factory=dict)
    reftypes: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def statuses(self) -> dict[str, str]:
        """{step: COMPLETE | SKIPPED | FAILED}, in run order."""
        return {name: r.status.value for name, r in self.results.items()}

    def _upto(self, through: str | None) -> list[tuple[str, StepResult]]:
        out = []
        for name, result in self.results.items():
            out.append((name, result))
            if name == through:
                break
        return out

    def status_cards(self, through: str | None = None) -> dict[str, str]:
        """S_* keywords of the steps run (up to and including ``through``)."""
        return {result.keyword: result.status.value for _, result in self._upto(through)}

    def used_references(self, through: str | None = None) -> dict[str, str]:
        """{reference type: file name} of the references completed steps used (up to and
        including ``through``)."""
        used: dict[str, str] = {}
        for _, result in self._upto(through):
            for reftype, filename in result.references.items():
                used.setdefault(reftype, filename)
        return used

    @property
    def references(self) -> dict[str, str]:
        """{reference type: file name} of every reference used."""
        return self.used_references()

    def reference_uris(self) -> list[str]:
        """``crds://<file>`` of every reference used, for a product's provenance."""
        return [f"crds://{name}" for name in self.references.values()]

    def reference_cards(self, through: str | None = None) -> dict[str, str]:
        """R_* keywords of every reference type of the run's steps: ``crds://<file>`` for
        a reference a completed step used (up to and including ``through``), else ``N/A``."""
        used = self.used_references(through)
        return {reference_keyword(t): f"crds://{used[t]}" if t in used else "N/A" for t in self.reftypes}


@dataclass(frozen=True)
class Output:
    """One product a pipeline made: the file name it gets, its suffix, its content (a
    FitsProduct, or an astropy table written as ECSV), its product type (SCIENCE, or
    AUXILIARY for intermediate products) and, for a product made from one member of an
    association (2c), that member's file name."""

    filename: str
    suffix: str
    content: Any
    product_type: str = "SCIENCE"
    member: str | None = None


class Recorded:
    """What a pipeline's result says of its run, from its ``record``."""

    record: RunRecord

    @property
    def statuses(self) -> dict[str, str]:
        """{step: COMPLETE | SKIPPED | FAILED}, in run order."""
        return self.record.statuses

    @property
    def references(self) -> dict[str, str]:
        """{reference type: file name} of the references used."""
        return self.record.references

    @property
    def notes(self) -> tuple[str, ...]:
        return tuple(self.record.notes)


def provenance_cards(*, software_version: str, context: str | None, created: str | None = None,
                     asn_table: str | None = None, asn_pool: str | None = None) -> dict[str, Any]:
    """Keywords saying how a product was made: CAL_VER, CAL_VCS, CRDS_VER, CRDS_CTX (``N/A``
    without a reference context), DATE, and the association (ASNTABLE, ASNPOOL) when given."""
    cards: dict[str, Any] = {"CAL_VER": software_version, "CAL_VCS": "RELEASE", "CRDS_VER": software_version,
                             "CRDS_CTX": context or "N/A"}
    if created:
        cards["DATE"] = created
    if asn_table:
        cards["ASNTABLE"] = asn_table
    if asn_pool:
        cards["ASNPOOL"] = asn_pool
    return cards


@dataclass(frozen=True)
class Pipeline(Generic[S]):
    """An ordered tuple of step declarations, with the pipeline's option model."""

    name: str
    title: str
    steps: tuple[Step[S], ...]
    options: type[BaseModel] = NoOptions

    def __post_init__(self) -> None:
        params: dict[str, type[BaseModel]] = {}
        for step in self.steps:
            if params.setdefault(step.name, step.params) is not step.params:
                raise ValueError(f"{self.name}: step {step.name} is declared twice with different parameters")

    @property
    def step_names(self) -> tuple[str, ...]:
        """Every declared step name, each once, in declaration order."""
        return tuple(dict.fromkeys(s.name for s in self.steps))

    @property
    def all_reftypes(self) -> tuple[str, ...]:
        """Every reference type any step reads, each once, in declaration order."""
        return tuple(dict.fromkeys(t for s in self.steps for t in s.all_reftypes))

    def sequence(self, keywords: Mapping[str, Any]) -> tuple[Step[S], ...]:
        """The steps an exposure with these keywords runs, in order."""
        steps = tuple(s for s in self.steps if s.applies(keywords))
        names = [s.name for s in steps]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: a step applies twice to {keywords.get('EXP_TYPE')} exposures")
        return steps

    def reftypes(self, keywords: Mapping[str, Any]) -> tuple[str, ...]:
        """Reference types the steps of this exposure read, each once, in step order."""
        return tuple(dict.fromkeys(t for s in self.sequence(keywords) for t in s.all_reftypes))

    def reference_steps(self, keywords: Mapping[str, Any]) -> list[tuple[str, tuple[str, ...]]]:
        """(step, reference types) of the steps of this exposure that read references."""
        return [(s.name, s.all_reftypes) for s in self.sequence(keywords) if s.all_reftypes]

    def params(self, *, skip: Iterable[str] = (), steps: Mapping[str, Mapping[str, Any] | BaseModel] | None = None,
               **options: Any) -> PipelineParams:
        """Validated parameters.

        Parameters
        ----------
        skip : iterable of str
            Step names to skip.
        steps : mapping, optional
            Step name -> its parameters (a mapping, or the step's model); the key ``skip``
            (bool) skips a step or runs one that is skipped by default.
        **options
            The pipeline's own options (its ``options`` model).

        Raises
        ------
        UnknownStepError
            A step the pipeline does not declare, or a parameter a step does not have.
        """
        names = self.step_names
        declared = {s.name: s for s in self.steps}
        skipped = {s.name for s in self.steps if s.skip_by_default}
        requested = set(skip)
        self._check_names(requested)
        skipped |= requested
        models: dict[str, BaseModel] = {}
        given = dict(steps or {})
        self._check_names(set(given))
        for name in names:
            model = declared[name].params
            value = given.get(name)
            if isinstance(value, BaseModel):
                if not isinstance(value, model):
                    raise UnknownStepError(f"{self.name}.{name} takes {model.__name__}, not {type(value).__name__}")
                models[name] = value
                continue
            fields = dict(value or {})
            if "skip" in fields:
                (skipped.add if _as_bool(fields.pop("skip"), f"{name}.skip") else skipped.discard)(name)
            unknown = sorted(set(fields) - set(model.model_fields))
            if unknown:
                have = ", ".join(model.model_fields) or "none besides skip"
                raise UnknownStepError(f"{self.name}.{name} has no parameter {', '.join(unknown)} "
                                       f"(its parameters: {have})")
            try:
                models[name] = model.model_validate(_split_sequences(model, fields))
            except ValidationError as exc:
                raise UnknownStepError(f"{self.name}.{name}: {_first_error(exc)}") from exc
        try:
            opts = self.options.model_validate(options)
        except ValidationError as exc:
            raise UnknownStepError(f"{self.name}: {_first_error(exc)}") from exc
        return PipelineParams(self.name, frozenset(skipped), models, opts)

    def _check_names(self, names: set[str]) -> None:
        unknown = sorted(names - set(self.step_names))
        if unknown:
            raise UnknownStepError(f"unknown step(s) {', '.join(unknown)}; {self.name} steps: "
                                   f"{', '.join(self.step_names)}")

    def run(
        self,
        state: S,
        keywords: Mapping[str, Any],
        refs: Mapping[str, Any],
        params: PipelineParams | None = None,
        *,
        step_hook: Callable[[str], AbstractContextManager] | None = None,
        after_step: Callable[[str, RunRecord], None] | None = None,
        label: str | None = None,
        until: str | None = None,
    ) -> RunRecord:
        """Run the steps of this exposure over ``state``.

        Parameters
        ----------
        state
            What the adapters work on (the pipeline's own state object).
        keywords : mapping
            The exposure's keywords (INSTRUME, EXP_TYPE pick the steps).
        refs : mapping
            Reference type -> reference (:class:`shared.refdata.Reference`), for those found
            (a missing type skips the steps that need it); each step's references are
            released when it ends.
        params : PipelineParams, optional
            From :meth:`params`; defaults when None.
        step_hook : callable, optional
            ``step_hook(name)`` returns a context manager entered around each step (the
            benchmarks time steps with it).
        after_step : callable, optional
            ``after_step(name, record)`` is called once each step that applies has run or
            been skipped, with the record so far: what is final by then can leave
            before the run ends (stage 3 archives its ``_crf`` while it resamples).
        label : str, optional
            Names the input in log lines (default: FILENAME).
        until : str, optional
            Stop after this step (a task of a run split across tasks goes only as far
            as its part needs).
        """
        p = params or self.params()
        if p.pipeline != self.name:
            raise ValueError(f"parameters of {p.pipeline} given to {self.name}")
        if until is not None:
            self._check_names({until})
        hook = step_hook or (lambda name: nullcontext())
        label = label or str(keywords.get("FILENAME") or "input")
        sequence = self.sequence(keywords)
        record = RunRecord(self.name, reftypes=tuple(dict.fromkeys(t for s in sequence for t in s.all_reftypes)))
        for step in sequence:
            if step.when is not None and not step.when(state):
                continue
            started = time.perf_counter()
            with hook(step.name):
                result = self._run_step(step, state, keywords, refs, p, record.notes)
            record.seconds[step.name] = time.perf_counter() - started
            record.results[step.name] = result
            if result.status is not StepStatus.COMPLETE:
                level = logging.WARNING if result.status is StepStatus.FAILED else _LEVELS.get(result.kind, logging.INFO)
                log.log(level, "%s: %s %s: %s", label, step.name, result.status.value.lower(), result.reason)
                record.notes.append(f"{step.name} {result.status.value.lower()}: {result.reason}")
            if after_step is not None:
                after_step(step.name, record)
            if step.name == until:
                break
        log.info("%s: %s steps took %.3f s (%s)", label, self.name, sum(record.seconds.values()),
                 ", ".join(f"{name} {sec:.3f}" for name, sec in record.seconds.items()))
        return record

    @staticmethod
    def _run_step(step: Step[S], state: S, keywords, refs, p: PipelineParams, notes: list[str]) -> StepResult:
        skipped = partial(StepResult, step.status_keyword, StepStatus.SKIPPED)
        if step.name in p.skip:
            return skipped("skipped by default" if step.skip_by_default else "skipped by parameter",
                           SkipKind.PARAMETER)
        missing = [t for t in step.reftypes if refs.get(t) is None]
        if missing:
            return skipped(f"no {' or '.join(t.upper() for t in missing)} reference", SkipKind.NO_REFERENCE)
        args = StepArgs({t: refs[t] for t in step.all_reftypes if refs.get(t) is not None}, p.step(step.name),
                        p.options, keywords, notes)
        try:
            outcome = step.adapter(state, args)
        except StepFailed as exc:
            return StepResult(step.status_keyword, StepStatus.FAILED, str(exc))
        finally:
            for ref in args.refs.values():  # what the step read is not kept for the rest of the run
                release = getattr(ref, "release", None)
                if release is not None:
                    release()
        if outcome is None:
            return StepResult(step.status_keyword, StepStatus.COMPLETE,
                              references={t: r.filename for t, r in args.refs.items()})
        return skipped(outcome.reason, outcome.kind)


def _as_bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise UnknownStepError(f"{what} must be true or false, not {value!r}")


def _split_sequences(model: type[BaseModel], fields: dict[str, Any]) -> dict[str, Any]:
    """A text value for a tuple or list parameter split on commas or spaces, as the public
    pipeline writes them (``snr="5.0 4.0"``)."""
    out = dict(fields)
    for name, value in fields.items():
        info = model.model_fields.get(name)
        if isinstance(value, str) and info is not None and typing.get_origin(info.annotation) in (tuple, list):
            out[name] = [v for v in value.replace(",", " ").split() if v]
    return out


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(x) for x in err.get("loc", ())) or "value"
    return f"{where}: {err.get('msg')} (got {err.get('input')!r})"
