"""TLS to NATS: the client side of ``tls { ... }`` in nats-server's config.

A service turns TLS on with its CA bundle (``<PREFIX>NATS_TLS_CA``) and, when the server
verifies clients (mutual TLS), its own certificate and key (``..._TLS_CERT``, ``..._TLS_KEY``).
The server's certificate is verified against the CA and its host name, always.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from .errors import TlsError

__all__ = ["TlsError", "client_tls"]


def client_tls(
    ca: Path | None, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext | None:
    """An SSL context that trusts ``ca`` and presents ``cert``/``key`` if given; None when no
    TLS setting is given. Raises :class:`TlsError` naming the setting and the file."""
    if ca is None and cert is None and key is None:
        return None
    if (cert is None) != (key is None):
        raise TlsError("nats_tls_cert and nats_tls_key go together: set both or neither")
    try:
        context = ssl.create_default_context(cafile=str(ca) if ca else None)
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(f"nats_tls_ca {ca}: not a readable CA bundle ({exc})") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None and key is not None:
        try:
            context.load_cert_chain(str(cert), str(key))
        except (OSError, ssl.SSLError) as exc:
            raise TlsError(
                f"nats_tls_cert {cert} / nats_tls_key {key}: not a usable pair ({exc})"
            ) from None
    return context
