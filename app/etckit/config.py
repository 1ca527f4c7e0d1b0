"""Settings: one TOML file plus ETCKIT_* environment overrides, validated at start.

Every key has a default (see docs/configuration.md). A bad value raises ConfigError whose
message is one line naming the key, the value and what is allowed; the CLI prints it and
exits with status 2.

Environment overrides are named ETCKIT_<SECTION>__<KEY>, e.g. ETCKIT_DATABASE__URL or
ETCKIT_MAIN_SERVER__PORT. Lists are comma-separated; booleans are true/false/1/0/yes/no.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

ENV_PREFIX = "ETCKIT_"


class ConfigError(Exception):
    """A setting is wrong; str(self) is one line an operator can act on."""


@dataclass(frozen=True)
class Key:
    kind: type  # bool, int, float, str or list
    default: Any
    check: Callable[[Any], str | None] | None = None  # returns a complaint or None
    doc: str = ""


def _range(lo: float | None = None, hi: float | None = None) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if lo is not None and v < lo:
            return f"must be >= {lo}"
        if hi is not None and v > hi:
            return f"must be <= {hi}"
        return None

    return check


def _one_of(*allowed: str) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        return None if v in allowed else "allowed: " + ", ".join(repr(a) for a in allowed)

    return check


def _db_url(v: str) -> str | None:
    if v.startswith(("sqlite:///", "postgresql://", "postgres://")):
        return None
    return "expected sqlite:///PATH or postgresql://USER@HOST/DB"


def _db_password(v: str) -> str | None:
    return None if v == "" or len(v) >= 16 else "must be empty or at least 16 characters"


def _port(v: int) -> str | None:
    return None if 0 <= v <= 65535 else "must be a TCP port between 0 and 65535"


PORT = _port


def _max_frame(v: int) -> str | None:
    return None if v == 0 or 65536 <= v <= 1 << 31 else "must be 0 (auto) or 65536..2^31"

SCHEMA: dict[str, dict[str, Key]] = {
    "database": {
        "url": Key(str, "sqlite:///var/etckit.db", _db_url, "where everything is stored"),
        "pool_min": Key(int, 1, _range(0, 100), "PostgreSQL pool: connections kept open"),
        "pool_max": Key(int, 10, _range(1, 1000), "PostgreSQL pool: most connections"),
        "busy_timeout": Key(float, 10.0, _range(0.1, 600),
                            "seconds to wait for a lock; with SQLite, also how long opening the"
                            " file waits while another process creates it or holds it locked"),
        "user": Key(str, "", None, "PostgreSQL role to log in as (empty: the URL's); the kit"
                    " gives each program its own (docs/security.md)"),
        "password": Key(str, "", _db_password, "its password (empty: the URL's); at least 16"
                        " characters, in the program's own environment file"),
        "sslmode": Key(str, "", _one_of("", "disable", "allow", "prefer", "require",
                                        "verify-ca", "verify-full"),
                       "PostgreSQL TLS (empty: the URL's or libpq's default); the kit sets"
                       " verify-full"),
        "sslrootcert": Key(str, "", None, "CA certificate (PEM) the database server's"
                           " certificate must chain to, for verify-ca and verify-full"),
    },
    "log": {
        "level": Key(str, "info", _one_of("debug", "info", "warning", "error"),
                     "least severity logged"),
    },
    "main_server": {
        "host": Key(str, "127.0.0.1", None, "address to listen on"),
        "port": Key(int, 8080, PORT, "port to listen on"),
        "public_url": Key(str, "http://127.0.0.1:8080", None, "URL browsers use"),
        "max_body_bytes": Key(int, 65536, _range(1024, 64 * 1024 * 1024),
                     "largest request body (413 above)"),
        "trusted_proxies": Key(list, [], None, "addresses whose X-Forwarded-* are believed"),
        "anonymous_logins_per_minute": Key(float, 10.0, _range(0, 100000),
                                           "anonymous logins one client address may make a"
                                           " minute, per process (0: no limit)"),
        "anonymous_login_burst": Key(int, 5, _range(1, 100000),
                                     "anonymous logins one address may make at once"),
        "anonymous_accounts_per_day": Key(int, 200, _range(0, 10000000),
                                          "anonymous accounts one address may create in 24"
                                          " hours, per process (0: no limit)"),
        "admins": Key(list, [], None, "who may see the System page /system: SSO users'"
                      " e-mail addresses, fake-login names (test systems)"),
    },
    "wssvc": {
        "host": Key(str, "127.0.0.1", None, "address to listen on"),
        "port": Key(int, 8081, PORT, "port to listen on"),
        "public_host": Key(str, "127.0.0.1", None, "host name browsers connect to"),
        "public_port": Key(int, 0, PORT, "port browsers connect to (0: same as port)"),
        "certfile": Key(str, "", None, "TLS certificate (PEM); empty: plain HTTP/ws"),
        "keyfile": Key(str, "", None, "TLS key (PEM)"),
        "allowed_origins": Key(list, [], None, "Origin values accepted (empty: main_server)"),
        "max_message_bytes": Key(int, 1048576, _range(256, 64 * 1024 * 1024),
                     "largest websocket message"),
        "client_queue": Key(int, 256, _range(1, 100000), "outgoing messages per client"),
        "max_bad_messages": Key(int, 10, _range(1, 100000), "bad messages before 1008"),
        "ping_interval": Key(float, 20.0, _range(0.1, 3600), "seconds between pings"),
        "request_timeout": Key(float, 60.0, _range(1, 3600),
                               "seconds a request (and a plot's render) waits for its reply; "
                               "then wssvc answers `timeout` and frees its in-flight slot (a "
                               "reply that comes later is still delivered)"),
        "pool": Key(str, "", None, "pool name served (empty: host name and port)"),
        "plot_cache_bytes": Key(int, 64 * 1024 * 1024, _range(0, 1 << 34),
                                "memory for plots served again without a worker"),
        "max_json_depth": Key(int, 32, _range(1, 256),
                              "deepest nesting of arrays and objects in a message"),
        "max_in_flight": Key(int, 8, _range(1, 100000),
                             "requests of one websocket waiting for their reply"),
        "connection_rate": Key(float, 10.0, _range(0.01, 1e6),
                               "requests a second one websocket may send, sustained"),
        "connection_burst": Key(int, 30, _range(1, 1000000),
                                "requests one websocket may send at once"),
        "max_refusals": Key(int, 100, _range(1, 1000000),
                            "rate_limited answers one user may get at once on this wssvc "
                            "(refilled at connection_rate) before her socket is closed with "
                            "1008 and she is blocked: a client that ignores retry_after"),
        "block_seconds": Key(float, 60.0, _range(0.0, 86400.0),
                             "how long a user closed with 1008 for ignoring retry_after is "
                             "refused new websockets on this wssvc (429, Retry-After)"),
        "user_rate": Key(float, 20.0, _range(0.01, 1e6),
                         "requests and plots a second per user (all its websockets)"),
        "user_burst": Key(int, 60, _range(1, 1000000),
                          "requests and plots one user may send at once"),
        "compression": Key(str, "message", _one_of("message", "stream", "off"),
                           "websocket permessage-deflate: each message alone (no zlib "
                           "state kept per socket), stream (context kept: smaller "
                           "messages, ~300 KB a socket) or off"),
    },
    "broker": {
        "host": Key(str, "127.0.0.1", None, "address to bind the ZeroMQ sockets to"),
        "advertise_host": Key(str, "", None, "address others connect to (empty: host)"),
        "frontend_port": Key(int, 0, PORT, "port for wssvc (0: any free port)"),
        "backend_port": Key(int, 0, PORT, "port for workers (0: any free port)"),
        "pool": Key(str, "", None, "pool served (empty: the wssvc pool with fewest brokers)"),
        "queue_limit": Key(int, 1000, _range(1, 1000000), "requests waiting for a worker"),
        "queue_per_user": Key(int, 100, _range(1, 1000000),
                              "requests one user may have waiting (rate_limited above)"),
    },
    "worker": {
        "pool": Key(str, "", None, "pool joined (empty: the pool with the fewest workers)"),
        "diagnostics": Key(bool, False, None, "enable the test.sleep handler (tests only)"),
    },
    "calculation": {
        "timeout_seconds": Key(float, 10.0, _range(0.5, 3600),
                               "wall-clock seconds a calculation or plot may run before its "
                               "process is killed (too_expensive)"),
        "memory_mb": Key(int, 600, _range(400, 1 << 20),
                         "address-space limit (RLIMIT_AS) of the calculation process, MB"),
        "max_sources": Key(int, 20, _range(1, 20), "sources placed in one scene"),
        "max_extended_sources": Key(int, 10, _range(0, 20),
                                    "gaussian or disk sources in one scene"),
        "max_source_size_arcsec": Key(float, 5.0, _range(0.001, 5.0),
                                      "largest gaussian FWHM or disk radius"),
        "max_offset_arcsec": Key(float, 5.0, _range(0.0, 5.0),
                                 "scene extent: largest offset of a source from the aperture"),
        "max_aperture_arcsec": Key(float, 8.0, _range(0.01, 8.0), "largest aperture radius"),
        "max_annulus_arcsec": Key(float, 8.0, _range(0.01, 8.0),
                                  "largest background annulus outer radius"),
        "max_image_subpixels": Key(int, 2_600_000, _range(10_000, 100_000_000),
                                   "sub-pixels of the scene image (grows with the annulus "
                                   "squared and the filter's oversampling)"),
        "max_source_samples": Key(int, 20_000_000, _range(10_000, 1_000_000_000),
                                  "placed sources x image sub-pixels (each source is drawn "
                                  "on the whole image)"),
        "upload_max_bytes": Key(int, 700_000, _range(1_000, 50_000_000),
                                "largest uploaded spectrum file, bytes (a FITS file travels "
                                "base64-encoded: keep 4/3 of it under wssvc.max_message_bytes)"),
        "upload_max_points": Key(int, 20_000, _range(2, 1_000_000),
                                 "most rows (wavelength, flux) of an uploaded spectrum"),
    },
    "heartbeat": {
        "interval": Key(float, 1.0, _range(0.05, 60), "seconds between ZeroMQ heartbeats"),
        "liveness": Key(int, 3, _range(1, 100), "missed heartbeats before a peer is dead"),
        "registry_interval": Key(float, 2.0, _range(0.1, 600), "registry refresh seconds"),
        "registry_liveness": Key(float, 10.0, _range(0.5, 3600), "registry entry lifetime"),
    },
    "metrics": {
        "port": Key(int, 0, PORT, "port of this program's Prometheus /metrics (0: none)"),
        "address": Key(str, "127.0.0.1", None, "address the /metrics endpoint listens on"),
    },
    "auth": {
        "session_secret": Key(str, "", None, "main_server only: at least 32 random characters;"
                              " CSRF, session and SSO-state keys are derived from it"),
        "session_lifetime": Key(float, 14 * 86400.0, _range(60, 365 * 86400),
                     "seconds a session lasts"),
        "cookie_domain": Key(str, "", None, "cookie Domain attribute (empty: host only)"),
        "cookie_secure": Key(str, "auto", _one_of("auto", "always", "never"),
                             "Secure cookies: auto = when served over HTTPS"),
        "anonymous": Key(bool, True, None, "offer the anonymous login button"),
        "anonymous_lifetime": Key(float, 86400.0, _range(60, 365 * 86400),
                                  "seconds before an anonymous user and its workbooks go"),
        "fake_login": Key(bool, False, None, "test systems only: log in by name"),
        "ticket_lifetime": Key(float, 30.0, _range(1, 3600), "seconds a wssvc ticket lives"),
        "ticket_private_key": Key(str, "", None, "main_server only: PEM file of the Ed25519"
                                  " key that signs tickets (0600/0640)"),
        "ticket_public_key": Key(str, "", None, "wssvc: PEM file of the Ed25519 public key(s)"
                                 " that verify tickets"),
        "session_check_interval": Key(float, 3.0, _range(0.1, 300),
                                      "seconds between wssvc's checks that the sessions behind"
                                      " its sockets are live (4003 when not)"),
        "api_token_max_lifetime": Key(float, 90 * 86400.0, _range(60, 3650 * 86400),
                                      "longest lifetime, seconds, of a personal API token"),
        "api_tokens_per_user": Key(int, 20, _range(1, 10_000),
                                   "live (unexpired, unrevoked) API tokens one user may hold"),
        "api_tickets_per_minute": Key(float, 60.0, _range(0, 100000),
                                      "wssvc tickets one API token may buy a minute, per"
                                      " main_server (0: no limit)"),
        "api_ticket_burst": Key(int, 20, _range(1, 100000),
                                "tickets one API token may buy at once before the rate applies"),
    },
    "sso": {
        "enabled": Key(bool, False, None, "offer login through an OpenID provider"),
        "issuer": Key(str, "", None, "OpenID provider issuer URL"),
        "client_id": Key(str, "", None, "client id registered at the provider"),
        "client_secret": Key(str, "", None, "client secret (keep it in a vault)"),
        "scopes": Key(list, ["openid", "profile", "email"], None, "scopes requested"),
        "registration_url": Key(str, "", None, "shows a Create account button when set"),
        "ca_file": Key(str, "", None, "CA bundle to trust for the provider (empty: system)"),
    },
    "zmq": {
        "curve": Key(bool, True, None, "encrypt and authenticate every ZeroMQ link (CURVE)"),
        "key_dir": Key(str, "var/keys", None,
                       "directory of this host's CURVE key files (made on first start, 0600)"),
        "key_name": Key(str, "", None,
                        "key file name: KEY_DIR/NAME.secret and NAME.public (empty: program)"),
        "max_message_bytes": Key(int, 0, _max_frame,
                                 "largest ZeroMQ frame accepted, else the link is cut "
                                 "(0: 16 x wssvc.max_message_bytes)"),
    },
    "dev": {
        "var_dir": Key(str, "var", None, "where etckit dev keeps its database and config"),
        "workers": Key(int, 2, _range(1, 64), "workers etckit dev starts"),
    },
    "quotas": {
        "workbooks_per_user": Key(int, 100, _range(1, 1_000_000), "workbooks one user may keep"),
        "items_per_workbook": Key(int, 200, _range(1, 100_000),
                                  "sources, scenes and calculations (each) in one workbook"),
        "name_max": Key(int, 200, _range(1, 200), "characters in a name"),
        "description_max": Key(int, 5000, _range(0, 1_000_000),
                               "characters in a workbook's description"),
        "reply_max_bytes": Key(int, 8 * 1024 * 1024, _range(4096, 1 << 30),
                               "largest reply a worker sends (too_large above)"),
        "spectrum_points_per_user": Key(int, 1_000_000, _range(2, 1_000_000_000),
                                        "points of uploaded spectra stored in all the "
                                        "workbooks one user owns (uploads and copies)"),
    },
}


@dataclass(frozen=True)
class Section:
    values: Mapping[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass(frozen=True)
class Config:
    sections: Mapping[str, Section] = field(default_factory=dict)
    path: str | None = None

    def __getattr__(self, name: str) -> Section:
        try:
            return self.sections[name]
        except KeyError:
            raise AttributeError(name) from None

    def get(self, dotted: str) -> Any:
        section, key = dotted.split(".", 1)
        return self.sections[section].values[key]


def _split(dotted: str) -> tuple[str, str]:
    section, _, key = dotted.partition(".")
    if section not in SCHEMA:
        raise ConfigError(f"unknown section [{section}]; known: {', '.join(SCHEMA)}")
    if key not in SCHEMA[section]:
        raise ConfigError(
            f"unknown key {section}.{key}; known in [{section}]: {', '.join(SCHEMA[section])}"
        )
    return section, key


# settings whose value an error message never shows (they hold or may hold a secret)
SECRET_KEYS = frozenset({"auth.session_secret", "sso.client_secret", "database.url",
                         "database.password"})

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_KIND_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
               list: "a list of strings"}


def _coerce(section: str, key: str, value: Any, origin: str) -> Any:
    spec = SCHEMA[section][key]
    name = f"{section}.{key}"
    shown = "(value hidden)" if name in SECRET_KEYS else repr(value)
    bad = ConfigError(
        f"{name} = {shown} ({origin}): expected {_KIND_NAMES[spec.kind]}"
    )
    from_env = isinstance(value, str) and origin.startswith("environment")
    if spec.kind is bool:
        if from_env:
            low = value.strip().lower()
            if low not in _TRUE | _FALSE:
                raise bad
            value = low in _TRUE
        elif not isinstance(value, bool):
            raise bad
    elif spec.kind is int:
        if from_env:
            try:
                value = int(value.strip())
            except ValueError:
                raise bad from None
        elif isinstance(value, bool) or not isinstance(value, int):
            raise bad
    elif spec.kind is float:
        if from_env:
            try:
                value = float(value.strip())
            except ValueError:
                raise bad from None
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise bad
        value = float(value)
    elif spec.kind is str:
        if not isinstance(value, str):
            raise bad
    elif spec.kind is list:
        if from_env:
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad
    if spec.check is not None:
        complaint = spec.check(value)
        if complaint:
            shown = "(value hidden)" if name in SECRET_KEYS else repr(value)  # as coerced
            raise ConfigError(f"{name} = {shown} ({origin}): {complaint}")
    return value


def load(path: str | os.PathLike[str] | None = None,
         environ: Mapping[str, str] | None = None) -> Config:
    """Read, merge and validate the settings. Raises ConfigError with one clear line."""
    environ = os.environ if environ is None else environ
    raw: dict[str, dict[str, Any]] = {
        s: {k: spec.default for k, spec in keys.items()} for s, keys in SCHEMA.items()
    }
    origin = "default"
    if path is not None:
        origin = str(path)
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except PermissionError:
            raise ConfigError(f"config file {path} cannot be read (permission denied)") from None
        except IsADirectoryError:
            raise ConfigError(f"config file {path} is a directory") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"config file {path} is not UTF-8 text") from None
        for section, table in data.items():
            if section not in SCHEMA:
                raise ConfigError(
                    f"unknown section [{section}] in {path}; known: {', '.join(SCHEMA)}"
                )
            if not isinstance(table, dict):
                raise ConfigError(f"{section} in {path} must be a table [{section}]")
            for key, value in table.items():
                _split(f"{section}.{key}")
                raw[section][key] = _coerce(section, key, value, str(path))
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX):].lower().partition("__")
        try:
            _split(f"{section}.{key}")
        except ConfigError as exc:
            raise ConfigError(f"environment variable {name}: {exc}") from None
        raw[section][key] = _coerce(section, key, value, f"environment {name}")
    cfg = Config(sections={s: Section(v) for s, v in raw.items()}, path=origin)
    _cross_checks(cfg)
    return cfg


def _cross_checks(cfg: Config) -> None:
    if cfg.database.pool_min > cfg.database.pool_max:
        raise ConfigError(
            f"database.pool_min = {cfg.database.pool_min} is larger than "
            f"database.pool_max = {cfg.database.pool_max}"
        )
    if bool(cfg.wssvc.certfile) != bool(cfg.wssvc.keyfile):
        raise ConfigError("wssvc.certfile and wssvc.keyfile must be set together")
    if cfg.sso.enabled:
        for key in ("issuer", "client_id"):
            if not cfg.sso.values[key]:
                raise ConfigError(f"sso.{key} is empty but sso.enabled = true")


def reference() -> str:
    """The Markdown table of every key, for docs/configuration.md."""
    lines = []
    for section, keys in SCHEMA.items():
        lines.append(f"\n## [{section}]\n")
        lines.append("| key | type | default | meaning |")
        lines.append("|---|---|---|---|")
        for key, spec in keys.items():
            shown = json.dumps(spec.default)
            kind = _KIND_NAMES[spec.kind].split(" ", 1)[1]
            lines.append(f"| `{key}` | {kind} | `{shown}` | {spec.doc} |")
    return "\n".join(lines) + "\n"



__all__ = ["Config", "ConfigError", "load", "reference"]


if __name__ == "__main__":  # python -m etckit.config > the table in docs/configuration.md
    print(reference(), end="")
