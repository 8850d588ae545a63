"""A property-based run of the archive API against its own OpenAPI document (schemathesis):
every operation is called with generated parameters and bodies, in-process over ASGI, on a
PostgreSQL catalog holding a program, an observation, a product with its preview, events,
a subscription and a reprocessing request. Each answer must be no server error, have a
status the document declares, match the declared schema, and never show a storage URI
(s3://, file://).

Bounded: a fixed number of examples per operation, derandomized (the same cases each run),
so it stays within a minute or two on two cores."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from services.archive.app import create_app
from shared.catalog import (
    Artifact,
    ArtifactKind,
    Catalog,
    Observation,
    Product,
    Program,
    ReprocessingRequest,
    ReprocessingUnit,
)
from shared.catalog.queries import add_event
from shared.config import Settings
from shared.messages import IngestRejected, ProductArchived, ProductRef, RawFile, new_event
from shared.storage import open_store
from shared.subscriptions import SubscriptionSpec, create_subscription
from shared.tokens import create_token
from shared.webhooks import WebhookPolicy
from tests.conftest import empty_catalog

pytestmark = pytest.mark.integration

EXAMPLES = 25
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
OWNER = "fuzz@example.org"
STORAGE_SCHEMES = (b"s3://", b"file://")


def _seed(catalog: Catalog) -> str:
    """A program with one observation, an uncal product and its preview, its archive event,
    an ingest rejection, a webhook subscription; returns a token of the subscriber."""
    name = "jw01234001001_01101_00001_nrca1_uncal.fits"
    sha = hashlib.sha256(name.encode()).hexdigest()
    with catalog.session() as s:
        s.add(Program(id="01234", title="fuzzed", category="GO", eap_months=0, created_at=T0, pi_user=OWNER))
        s.flush()
        obs = Observation(program_id="01234", number=1, instrument="NIRCAM", exp_type="NRC_IMAGE",
                          target_name="FIELD", target_ra=53.16, target_dec=-27.79)
        s.add(obs)
        s.flush()
        product = Product(filename=name, suffix="uncal", level=1, revision=1, is_current=True, program_id="01234",
                          observation_id=obs.id, archived_at=T0, meta_release=T0, data_release=T0, inputs=[])
        product.artifacts.append(Artifact(kind=ArtifactKind.DATA, uri=f"s3://dms-archive/01234/001/r1/{name}",
                                          sha256=sha, size=10, content_type="application/fits"))
        product.artifacts.append(Artifact(kind=ArtifactKind.PREVIEW, uri="file:///var/previews/x_uncal.png",
                                          sha256=sha, size=10, content_type="image/png"))
        s.add(product)
        ref = ProductRef(uri=f"s3://dms-archive/01234/001/r1/{name}", filename=name, suffix="uncal", sha256=sha,
                         size=10, program="01234", observation=1)
        add_event(s, new_event(ProductArchived(product=ref, level=1, data_release=T0), "/test", subject=name, time=T0))
        raw = RawFile(uri="file:///var/objects/dms-raw/noise.ccsds", filename="noise.ccsds", sha256=sha, size=3)
        add_event(s, new_event(IngestRejected(raw=raw, reason="no_science_packets", program=None,
                                              detail="nothing in file:///var/objects/dms-raw/noise.ccsds"),
                               "/test", subject="noise.ccsds", time=T0 + timedelta(minutes=1)))
        request = ReprocessingRequest(
            id="5d1c7a52-8a0e-4d1b-9c55-0d3f6c2b7e11", key="0" * 64, program_id="01234",
            scope={"observations": [1], "exposures": [], "products": [], "association": None}, from_stage="stage2",
            reference_context="dms_0001.ctx", reason="seeded", requested_by=OWNER, state="done", created_at=T0,
            started_at=T0, finished_at=T0)
        request.units.append(ReprocessingUnit(kind="exposure", name="jw01234001001_01101_00001_nrca1",
                                              stage="stage2", state="done", pending=[], started_at=T0,
                                              finished_at=T0))
        s.add(request)
        create_subscription(s, OWNER, SubscriptionSpec(channel="webhook", target="http://192.0.2.10/hook"),
                            policy=WebhookPolicy.from_text("192.0.2.0/24"))
        return create_token(s, OWNER, 1, "schema test")


@pytest.fixture(scope="module")
def api(tmp_path_factory, pg_server_url):
    url = empty_catalog(pg_server_url)
    tmp = tmp_path_factory.mktemp("schema")
    settings = Settings(var_dir=tmp / "var", catalog_url=url, subscription_limit=5, _env_file=None)
    catalog = Catalog(url)
    token = _seed(catalog)
    catalog.dispose()
    open_store(settings).ensure_buckets()  # a healthy system: /health answers 200
    app = create_app(settings)
    with TestClient(app):  # runs the lifespan: catalog and store opened for the whole module
        yield app, token


@pytest.fixture(scope="module")
def api_schema(api):
    app, _ = api
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.fixture(scope="module")
def token(api):
    return api[1]


@schemathesis.check
def no_storage_uri(ctx, response, case):
    """Public answers name files by name or dataURI, never by where they are stored."""
    body = response.content or b""
    found = [s.decode() for s in STORAGE_SCHEMES if s in body.lower()]
    if found:
        raise AssertionError(f"{case.method} {case.path}: the answer shows a storage URI ({', '.join(found)})")


CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, no_storage_uri]


def _fuzz(operation, mode: GenerationMode, headers: dict | None):
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    def run(case):
        case.call_and_validate(headers=headers, checks=CHECKS)

    return run


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_api_conforms_to_its_openapi(api_schema, token, mode):
    """Every operation, with inputs that follow the document (valid) and inputs that break
    it (invalid): no 5xx, declared statuses, declared schemas, no storage URI."""
    failures = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 23, [op.label for op in operations]
    for operation in operations:
        headers = ({"Authorization": f"Bearer {token}"}
                   if operation.path.startswith(("/subscriptions", "/reprocessing")) else None)

        try:
            _fuzz(operation, mode, headers)()
        except Unsatisfiable:  # nothing invalid to make (no parameter, or free text only)
            assert mode == GenerationMode.NEGATIVE, operation.label
        except Exception as exc:  # every operation is tried; all failures are reported together
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)


def test_openapi_declares_errors_and_no_server_error(api_schema, api):
    app, _ = api
    document = app.openapi()
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            codes = set(op["responses"])
            assert {"400", "401"} <= codes, (method, path, codes)
            assert not any(code.startswith("5") and code != "503" for code in codes), (method, path, codes)
            assert "422" not in codes or path.startswith("/subscriptions"), (method, path, codes)
