"""TLS to an `https://` orchestrator: a custom CA bundle and a client certificate for mTLS.

The files are checked when the configuration is read (missing, unreadable, not PEM, a key that does not
fit the certificate, an expired client certificate), so a bad one stops start-up with one line. At run
time, `describe()` turns the TLS failures aiohttp reports into one line naming the setting to fix.
avtomatika 1.0b30 takes a client certificate's Common Name as the worker's identity (rxon
`extract_cert_identity`) and refuses it when it differs from the worker id (`verify_worker_auth`).
"""

from __future__ import annotations

import base64
import binascii
import errno
import logging
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

import aiohttp

from .errors import ConfigError

logger = logging.getLogger(__name__)

CA_FILE = "WORKER_TLS_CA_FILE"
CERT_FILE = "WORKER_TLS_CERT_FILE"
KEY_FILE = "WORKER_TLS_KEY_FILE"
KEY_PASSWORD = "WORKER_TLS_KEY_PASSWORD"  # a secret: WORKER_TLS_KEY_PASSWORD_FILE reads it from a file
# The official SDK's names for the same files, read when ours are not set.
OFFICIAL_NAMES = {CA_FILE: "TLS_CA_PATH", CERT_FILE: "TLS_CERT_PATH", KEY_FILE: "TLS_KEY_PATH"}
# A client certificate this close to its end gets a warning at start.
EXPIRY_WARNING = timedelta(days=14)

_CERT_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.DOTALL)
_PRIVATE_KEY = "PRIVATE KEY-----"
_UTC_TIME, _GENERALIZED_TIME, _EXPLICIT_VERSION = 0x17, 0x18, 0xA0
# OpenSSL's reasons when it meets plain HTTP where it expected TLS.
_NOT_TLS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST")


class TlsFile(NamedTuple):
    """A file named by an environment variable (ours or the official SDK's name): messages name it."""

    variable: str
    path: str

    def shown(self) -> str:
        """`VARIABLE='path'`, as messages print it."""
        return f"{self.variable}={self.path!r}"


def _file_error(file: TlsFile, rule: str, fix: str) -> ConfigError:
    return ConfigError(f"{file.shown()} is invalid: {rule} ({fix})")


@dataclass(frozen=True)
class TlsSettings:
    """The CA bundle that verifies the orchestrator, and the client certificate and key for mTLS."""

    ca: TlsFile | None = None
    cert: TlsFile | None = None
    key: TlsFile | None = None
    key_password: str | None = field(default=None, repr=False)
    cert_expires: datetime | None = None  # the client certificate's notAfter

    @property
    def enabled(self) -> bool:
        """Whether any TLS file is configured (otherwise aiohttp's defaults apply to https://)."""
        return self.ca is not None or self.cert is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str], now: datetime | None = None) -> TlsSettings:
        """Read and check the TLS files; raises ConfigError naming the variable, its value and the fix."""
        from .config import env_secret  # config.py imports this module

        ca, cert, key = (_file(env, name) for name in (CA_FILE, CERT_FILE, KEY_FILE))
        if key is not None and cert is None:
            raise ConfigError(
                f"{key.shown()} is set but {CERT_FILE} is not: a client key needs its certificate "
                f"(set {CERT_FILE} to the certificate issued for this key, e.g. {CERT_FILE}=/certs/worker.pem)"
            )
        expires = None
        if ca is not None:
            _pem(ca, "-----BEGIN CERTIFICATE-----", "a PEM CA bundle (-----BEGIN CERTIFICATE-----)")
        if cert is not None:
            text = _pem(
                cert, "-----BEGIN CERTIFICATE-----", "a PEM certificate (-----BEGIN CERTIFICATE-----)"
            )
            expires = _check_validity(cert, text, now or datetime.now(UTC))
            if key is None:
                if _PRIVATE_KEY not in text:
                    raise ConfigError(
                        f"{cert.shown()} is set but {KEY_FILE} is not, and the file holds no private key "
                        f"(set {KEY_FILE} to the certificate's key, e.g. {KEY_FILE}=/certs/worker.key)"
                    )
                key = TlsFile(cert.variable, cert.path)
            else:
                _pem(key, _PRIVATE_KEY, "a PEM private key (-----BEGIN PRIVATE KEY-----)")
        settings = cls(ca, cert, key, env_secret(env, KEY_PASSWORD), expires)
        if settings.enabled:
            _check_scheme(env, ca or cert)
            settings._context()  # the key fits the certificate, the password opens the key
        return settings

    def ssl_context(self) -> ssl.SSLContext | None:
        """The client context for the orchestrator (HTTP and WebSocket); None: aiohttp's default."""
        if not self.enabled:
            return None
        if self.cert is not None and self.cert_expires is not None:
            left = self.cert_expires - datetime.now(UTC)
            if left < EXPIRY_WARNING:
                logger.warning(
                    "the client certificate %s expires on %s (in %.1f days): renew it before then",
                    self.cert.shown(),
                    self.cert_expires.isoformat(),
                    left.total_seconds() / 86400,
                )
        return self._context()

    def _context(self) -> ssl.SSLContext:
        # With a CA bundle, only its CAs are trusted (as curl --cacert): not the system's as well.
        if self.ca is None:
            context = ssl.create_default_context()
        else:
            try:
                context = ssl.create_default_context(cafile=self.ca.path)
            except ssl.SSLError as exc:
                rule = f"OpenSSL cannot load it as a CA bundle ({exc.reason or exc})"
                raise _file_error(self.ca, rule, "use PEM CA certificates") from None
        if self.cert is not None and self.key is not None:
            self._load_chain(context, self.cert, self.key)
        return context

    def _load_chain(self, context: ssl.SSLContext, cert: TlsFile, key: TlsFile) -> None:
        password = (self.key_password or "").encode()
        try:
            # A callable: OpenSSL must never prompt on a terminal for the password of an encrypted key.
            context.load_cert_chain(cert.path, key.path, password=lambda: password)
        except ssl.SSLError as exc:
            if exc.reason == "KEY_VALUES_MISMATCH":
                raise _file_error(
                    key, f"it is not the private key of {cert.shown()}", "point both at the same key pair"
                ) from None
            encrypted = "ENCRYPTED" in Path(key.path).read_text(encoding="ascii", errors="replace")
            if encrypted:
                wrong = "is wrong" if self.key_password else "is not set"
                raise _file_error(
                    key,
                    f"the key is encrypted and {KEY_PASSWORD} {wrong}",
                    f"set {KEY_PASSWORD} or {KEY_PASSWORD}_FILE to its password",
                ) from None
            raise _file_error(
                key, f"OpenSSL cannot load the key ({exc.reason or exc})", "use a PEM key without a password"
            ) from None

    # ---- run-time failures -----------------------------------------------------------------------

    def describe(self, exc: BaseException, url: str) -> str | None:
        """One line on a TLS failure of a request to `url`, naming the setting to fix; None: not TLS."""
        if isinstance(exc, aiohttp.ClientConnectorCertificateError):
            return self._untrusted(exc)
        if isinstance(exc, aiohttp.ClientSSLError):
            reason = str(exc.os_error)
            if any(marker in reason for marker in _NOT_TLS):
                return (
                    f"the orchestrator does not speak TLS on this port ({reason}): its TLS_ENABLED is false, "
                    "so use http:// in ORCHESTRATOR_URL (or enable TLS on the orchestrator)"
                )
            return f"the TLS handshake with the orchestrator failed ({reason}); {self._client_cert_hint()}"
        if _dropped(exc) and urlsplit(url).scheme == "https":
            # TLS 1.3: a server that refuses the client certificate just closes the connection.
            return f"the orchestrator closed the connection without an answer ({exc}); {self._client_cert_hint()}"
        return None

    def _untrusted(self, exc: aiohttp.ClientConnectorCertificateError) -> str:
        error = exc.certificate_error
        reason = getattr(error, "verify_message", None) or str(error)
        if "mismatch" in reason:
            return (
                f"the orchestrator's TLS certificate is not valid for the host of ORCHESTRATOR_URL ({reason}): "
                "use a host name or address that its certificate names"
            )
        if "expired" in reason:
            return f"the orchestrator's TLS certificate has expired ({reason}): renew its TLS_CERT_PATH"
        if self.ca is not None:
            where = f"{self.ca.shown()} holds no CA that signed it"
            fix = f"point {self.ca.variable} at the CA bundle that issued the orchestrator's TLS_CERT_PATH"
        else:
            where = f"{CA_FILE} is not set and the system CAs do not trust it"
            fix = f"set {CA_FILE} to the CA bundle that issued the orchestrator's TLS_CERT_PATH"
        return f"the orchestrator's TLS certificate is not trusted ({reason}): {where}; {fix}"

    def _client_cert_hint(self) -> str:
        if self.cert is None:
            return (
                f"if it requires client certificates (TLS_REQUIRE_CLIENT_CERT=true), set {CERT_FILE} and "
                f"{KEY_FILE} to a certificate issued by its TLS_CA_PATH"
            )
        return (
            f"it may refuse the client certificate {self.cert.shown()}: it must be issued by the CA in "
            "the orchestrator's TLS_CA_PATH and not be expired"
        )

    def refusal_hint(self, error: str, worker_id: str) -> str | None:
        """Why the orchestrator refused this worker's credentials over mTLS (its 403 text), or None."""
        if "Certificate CN" in error and self.cert is not None:
            return (
                f"the orchestrator takes the Common Name of the client certificate {self.cert.shown()} as "
                f"the worker id: issue it with CN={worker_id}, or set WORKER_ID to its CN"
            )
        if "Client certificate required" in error or "Invalid authentication method" in error:
            return (
                f"the orchestrator accepts only client certificates (WORKER_AUTH_MODE=mtls-only): set "
                f"{CERT_FILE} and {KEY_FILE} to a certificate with CN={worker_id} issued by its TLS_CA_PATH"
            )
        return None


def _dropped(exc: BaseException) -> bool:
    """The server closed (or reset) an established connection before answering."""
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return True
    connected = isinstance(exc, aiohttp.ClientOSError) and not isinstance(exc, aiohttp.ClientConnectorError)
    return connected and getattr(exc, "errno", None) in (errno.ECONNRESET, errno.EPIPE)


def _file(env: Mapping[str, str], name: str) -> TlsFile | None:
    for variable in (name, OFFICIAL_NAMES[name]):
        raw = env.get(variable, "").strip()
        if raw:
            return TlsFile(variable, str(Path(raw).expanduser()))
    return None


def _pem(file: TlsFile, marker: str, what: str) -> str:
    """The file's text; raises ConfigError when it is missing, unreadable or not `what`."""
    try:
        text = Path(file.path).read_text(encoding="ascii")
    except FileNotFoundError:
        raise _file_error(
            file, "the file does not exist", f"mount it there or point {file.variable} at it"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not PEM text"
        raise _file_error(
            file, f"the file cannot be read ({reason})", f"it must be {what}, readable by the worker"
        ) from None
    if marker not in text:
        raise _file_error(
            file, f"the file is not {what}", "convert it to PEM, e.g. with `openssl x509 -inform der`"
        )
    return text


def _check_validity(cert: TlsFile, text: str, now: datetime) -> datetime:
    """The client certificate's notAfter; raises ConfigError when it is expired or not yet valid."""
    block = _CERT_BLOCK.search(text)
    try:
        if block is None:
            raise ValueError("no certificate block")
        not_before, not_after = _validity(base64.b64decode(block.group(1)))
    except (IndexError, ValueError, binascii.Error):
        raise _file_error(
            cert, "the first certificate in it cannot be read", "use a PEM X.509 certificate"
        ) from None
    if now >= not_after:
        raise _file_error(
            cert, f"the certificate expired on {not_after.isoformat()}", "renew it and restart the worker"
        )
    if now < not_before:
        raise _file_error(
            cert,
            f"the certificate is not valid before {not_before.isoformat()}",
            "check this machine's clock, or wait until then",
        )
    return not_after


def _tlv(data: bytes, at: int) -> tuple[int, int, int]:
    """The DER element at `at`: its tag and where its content starts and ends."""
    tag, length = data[at], data[at + 1]
    at += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[at : at + count], "big")
        at += count
    if at + length > len(data):
        raise ValueError("truncated DER")
    return tag, at, at + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    found = []
    while start < end:
        element = _tlv(data, start)
        found.append(element)
        start = element[2]
    return found


def _validity(der: bytes) -> tuple[datetime, datetime]:
    """notBefore and notAfter of an X.509 certificate (RFC 5280 §4.1), read without a crypto library."""
    _, start, end = _tlv(der, 0)  # Certificate
    _, start, end = _tlv(der, start)  # TBSCertificate
    fields = _children(der, start, end)
    if fields[0][0] == _EXPLICIT_VERSION:
        fields = fields[1:]
    _, start, end = fields[3]  # serialNumber, signature, issuer, validity
    times = _children(der, start, end)
    return _time(der, *times[0]), _time(der, *times[1])


def _time(der: bytes, tag: int, start: int, end: int) -> datetime:
    text = der[start:end].decode("ascii")
    if tag == _UTC_TIME:  # YYMMDDHHMMSSZ, 1950-2049
        year = int(text[:2])
        text = f"{year + (1900 if year >= 50 else 2000)}{text[2:]}"
    elif tag != _GENERALIZED_TIME:
        raise ValueError(f"unexpected time tag {tag}")
    return datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=UTC)


def _check_scheme(env: Mapping[str, str], file: TlsFile | None) -> None:
    url = env.get("ORCHESTRATOR_URL", "").strip()
    if file is not None and any(urlsplit(one.strip()).scheme == "http" for one in url.split(",")):
        raise ConfigError(
            f"{file.variable} is set but ORCHESTRATOR_URL={url!r} is http://: TLS settings apply to an "
            f"https:// orchestrator (use https:// with an orchestrator that has TLS_ENABLED=true, "
            f"or unset {file.variable})"
        )
