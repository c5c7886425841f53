"""The service image's health check: exit 0 only when the service's /healthz answers 200.

Run as ``python -S /opt/hms/healthcheck.py`` (the image's HEALTHCHECK and compose's): the
standard library only, without site packages, so it costs a third of a second where importing
the kit takes seconds on a busy machine. The port is the service's ``HMS_<SERVICE>_HTTP_PORT``
(the prefix from ``HMS_SERVICE_PACKAGE``, as ``hms_kit.settings.env_prefix`` makes it), 8080 by
default. A file rather than ``python -c``: podman's Docker API splits a health command's
arguments on spaces.
"""

import os
import sys
import urllib.error
import urllib.request

package = os.environ.get("HMS_SERVICE_PACKAGE", "")
port = os.environ.get(package.upper().replace("-", "_") + "_HTTP_PORT", "8080")
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as resp:
        sys.exit(0 if resp.status == 200 else 1)
except (urllib.error.URLError, OSError) as exc:
    sys.exit(f"unhealthy: {exc}")
