"""Health check of a jwst-dms worker container: does its Celery node answer a ping?

    python /opt/dms/worker_health.py SERVICE      exit 0 if SERVICE@<hostname> answers

``dms worker SERVICE`` names its node ``SERVICE@%h`` (the full hostname: the container id
under compose, the pod name under Kubernetes), so the check asks exactly this container's
worker, through the broker in ``DMS_BROKER_URL``. Used by the readiness and liveness
probes in k8s/workers.yaml and by ``entrypoint.py health`` (the image's HEALTHCHECK, which
compose uses); copied into the image by docker/Dockerfile.
"""

from __future__ import annotations

import socket
import sys

from shared.celery_app import create_app
from shared.config import get_settings

TIMEOUT = 10.0  # seconds to wait for the reply


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    node = f"{argv[1]}@{socket.gethostname()}"
    app = create_app(get_settings())
    try:
        replies = app.control.ping(destination=[node], timeout=TIMEOUT)
    except Exception as exc:  # broker unreachable: unhealthy, with the reason
        print(f"{node}: cannot ask the broker: {exc}", file=sys.stderr)
        return 1
    if any(node in reply for reply in replies):
        print(f"{node}: pong")
        return 0
    print(f"{node}: no answer within {TIMEOUT:.0f} s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
