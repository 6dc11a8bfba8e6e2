"""PACS nodes, read from a TOML file (``~/.config/lucida/pacs.toml`` or ``LUCIDA_PACS_CONFIG``).

A node is either a DICOMweb endpoint (``dicomweb = "https://..."``) or a DIMSE peer
(``ae_title``, ``host``, ``port``). Secrets never live in the file: a bearer token is named by
``token_env`` and read from the environment when a connection opens, and nothing in this package
prints or logs it. A key that looks like a secret (``token``, ``password``, a URL with a password)
is refused, so a slip is caught before it is committed to a dotfiles repository.

Example::

    [cache]
    max_mb = 2048                                  # size limit of the retrieve cache

    [nodes.orthanc-web]
    dicomweb = "https://pacs.example.org/dicom-web"
    token_env = "PACS_TOKEN"
    ca_bundle = "/etc/ssl/certs/hospital-ca.pem"

    [nodes.orthanc-dimse]
    ae_title = "ORTHANC"
    host = "127.0.0.1"
    port = 4242
    calling_ae = "LUCIDA"
    retrieve = "move"                              # C-MOVE instead of C-GET (the default)
    move_port = 11112                              # where Lucida's Storage SCP listens

A DIMSE node retrieves with C-GET unless it says ``retrieve = "move"``. C-MOVE makes the PACS
open its own association to a *move destination*, so the PACS must know ``calling_ae`` with this
machine's address and ``move_port``. Lucida then listens on ``move_port`` for the length of each
retrieve only, on ``move_host`` (by default 127.0.0.1 when the PACS's host is this machine, and
every interface otherwise, since a PACS elsewhere must reach it). With ``tls = true`` that
Storage SCP serves TLS too, showing ``tls_cert`` and ``tls_key``.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from engine.core.log import remember_secret
from engine.pacs.errors import PacsError

#: Environment variable naming the node file, instead of the default location.
CONFIG_ENV = "LUCIDA_PACS_CONFIG"
#: Lucida's own AE title when a node does not give ``calling_ae``.
DEFAULT_CALLING_AE = "LUCIDA"
#: Default size limit of the retrieve cache, in MB.
DEFAULT_CACHE_MB = 4096

_NODE_KEYS = {
    "dicomweb", "token_env", "ca_bundle", "verify_tls",
    "ae_title", "host", "port", "calling_ae", "tls", "tls_cert", "tls_key",
    "timeout", "retries", "backoff", "retrieve", "move_port", "move_host",
}
#: How a DIMSE node may retrieve.
RETRIEVE_METHODS = ("get", "move")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_SECRET_KEYS = {"token", "password", "passwd", "secret", "authorization", "api_key", "bearer"}
_CACHE_KEYS = {"max_mb", "folder"}


def config_path() -> Path:
    """Return the node file: ``$LUCIDA_PACS_CONFIG``, else ``~/.config/lucida/pacs.toml``."""
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "lucida" / "pacs.toml"


@dataclass(frozen=True)
class Node:
    """One PACS node.

    Attributes
    ----------
    name : str
        The name under ``[nodes.NAME]``.
    dicomweb : str
        Base URL of the DICOMweb service (QIDO-RS, WADO-RS, STOW-RS); empty for DIMSE nodes.
    token_env : str
        Environment variable holding a bearer token; empty for none.
    ca_bundle : str
        CA certificates (PEM) to verify the server's TLS certificate with; empty for the
        system's.
    verify_tls : bool
        Verify the server certificate (DICOMweb over https, DIMSE over TLS).
    ae_title, host, port : str, str, int
        The DIMSE peer.
    calling_ae : str
        Lucida's own AE title, which the PACS must know for C-GET, C-MOVE and C-STORE.
    tls : bool
        DIMSE over TLS.
    tls_cert, tls_key : str
        Client certificate and key files for mutual TLS (paths, never the key itself).
    timeout : float
        Seconds to wait for the connection and for each answer.
    retries : int
        Further attempts of a send after a connection fault (rejections are not retried).
    backoff : float
        Seconds before the first retry; doubled before each next one.
    retrieve : str
        ``"get"`` (C-GET, the default) or ``"move"`` (C-MOVE to ``calling_ae``).
    move_port : int
        The port Lucida's Storage SCP listens on during a C-MOVE; 0 for C-GET nodes.
    move_host : str
        The address that Storage SCP binds to (see :attr:`move_bind`); empty for the default.
    """

    name: str
    dicomweb: str = ""
    token_env: str = ""
    ca_bundle: str = ""
    verify_tls: bool = True
    ae_title: str = ""
    host: str = ""
    port: int = 0
    calling_ae: str = DEFAULT_CALLING_AE
    tls: bool = False
    tls_cert: str = ""
    tls_key: str = ""
    timeout: float = 30.0
    retries: int = 3
    backoff: float = 0.5
    retrieve: str = "get"
    move_port: int = 0
    move_host: str = ""

    @property
    def move_bind(self) -> str:
        """The address the C-MOVE Storage SCP binds to.

        ``move_host`` when given; otherwise 127.0.0.1 for a PACS on this machine (nothing
        else can then store to Lucida) and every interface for a PACS elsewhere.
        """
        if self.move_host:
            return self.move_host
        return "127.0.0.1" if self.host in _LOOPBACK else "0.0.0.0"

    @property
    def protocol(self) -> str:
        """``"dicomweb"`` or ``"dimse"``."""
        return "dicomweb" if self.dicomweb else "dimse"

    @property
    def label(self) -> str:
        """The node as messages name it: ``pacs node NAME``."""
        return f"pacs node {self.name}"

    @property
    def address(self) -> str:
        """Where the node is, for messages (a URL, or ``AE@host:port``)."""
        if self.dicomweb:
            return self.dicomweb
        return f"{self.ae_title}@{self.host}:{self.port}"

    def token(self) -> str | None:
        """Return the bearer token from the environment, or None when the node has none.

        Raises
        ------
        PacsError
            If ``token_env`` names a variable that is not set.
        """
        if not self.token_env:
            return None
        value = os.environ.get(self.token_env)
        if not value:
            raise PacsError(
                f"token_env names {self.token_env}, which is not set",
                path=self.label,
                fix=f"export {self.token_env} with the bearer token before running Lucida",
            )
        return remember_secret(value)  # never written to the log


@dataclass(frozen=True)
class PacsConfig:
    """Every node of the file, and the retrieve cache's settings."""

    nodes: dict[str, Node] = field(default_factory=dict)
    cache_folder: Path | None = None
    cache_max_mb: float = DEFAULT_CACHE_MB
    path: Path | None = None

    def node(self, name: str) -> Node:
        """Return the node called ``name``.

        Raises
        ------
        PacsError
            If there is no such node; the message lists the known ones.
        """
        if name in self.nodes:
            return self.nodes[name]
        known = ", ".join(sorted(self.nodes)) or "none"
        raise PacsError(
            f"no PACS node named {name!r} (known: {known})",
            path=self.path,
            fix=f"add a [nodes.{name}] table to the file, or set {CONFIG_ENV}",
        )


def _bad(path: Path, message: str, fix: str) -> PacsError:
    return PacsError(message, path=path, fix=fix)


def _node(path: Path, name: str, table: dict) -> Node:
    if not isinstance(table, dict):
        raise _bad(path, f"[nodes.{name}] is not a table", f"write [nodes.{name}] with keys")
    secret = sorted(k for k in table if k.lower() in _SECRET_KEYS)
    if secret:
        raise _bad(path, f"node {name} holds a secret ({secret[0]}) in the file",
                   "remove it and name an environment variable with token_env instead")
    unknown = sorted(set(table) - _NODE_KEYS)
    if unknown:
        raise _bad(path, f"node {name} has unknown key {unknown[0]!r}",
                   f"use only {', '.join(sorted(_NODE_KEYS))}")
    url = str(table.get("dicomweb", "") or "")
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise _bad(path, f"node {name}: dicomweb {url!r} is not an http(s) URL",
                       "write e.g. dicomweb = \"https://pacs.example.org/dicom-web\"")
        if parts.password:
            raise _bad(path, f"node {name}: the dicomweb URL holds a password",
                       "remove it and name an environment variable with token_env instead")
        if table.get("host") or table.get("port"):
            raise _bad(path, f"node {name} names both a dicomweb URL and a DIMSE host",
                       "split it into two nodes, one per protocol")
    else:
        missing = [k for k in ("ae_title", "host", "port") if not table.get(k)]
        if missing:
            raise _bad(path, f"node {name} has neither dicomweb nor {', '.join(missing)}",
                       "give dicomweb = URL, or ae_title, host and port")
    try:
        node = Node(
            name=name,
            dicomweb=url.rstrip("/"),
            token_env=str(table.get("token_env", "")),
            ca_bundle=str(Path(str(table["ca_bundle"])).expanduser())
            if table.get("ca_bundle") else "",
            verify_tls=bool(table.get("verify_tls", True)),
            ae_title=str(table.get("ae_title", "")),
            host=str(table.get("host", "")),
            port=int(table.get("port", 0)),
            calling_ae=str(table.get("calling_ae", DEFAULT_CALLING_AE)),
            tls=bool(table.get("tls", False)),
            tls_cert=str(table.get("tls_cert", "")),
            tls_key=str(table.get("tls_key", "")),
            timeout=float(table.get("timeout", 30.0)),
            retries=int(table.get("retries", 3)),
            backoff=float(table.get("backoff", 0.5)),
            retrieve=str(table.get("retrieve", "get")),
            move_port=int(table.get("move_port", 0)),
            move_host=str(table.get("move_host", "")),
        )
    except (TypeError, ValueError) as exc:
        raise _bad(path, f"node {name} has a value of the wrong type ({exc})",
                   "port, move_port, retries are integers; timeout, backoff are numbers"
                   ) from exc
    for title in (node.ae_title, node.calling_ae):
        if title and not (len(title) <= 16 and title.isascii() and "\\" not in title):
            raise _bad(path, f"node {name}: AE title {title!r} is not valid",
                       "use at most 16 ASCII characters")
    if node.timeout <= 0 or node.retries < 0 or node.backoff < 0:
        raise _bad(path, f"node {name}: timeout, retries or backoff is out of range",
                   "use timeout > 0, retries >= 0 and backoff >= 0")
    _check_retrieve(path, name, node, table)
    return node


def _check_retrieve(path: Path, name: str, node: Node, table: dict) -> None:
    given = sorted(k for k in ("retrieve", "move_port", "move_host") if k in table)
    if node.dicomweb and given:
        raise _bad(path, f"node {name} is a dicomweb node and sets {given[0]}",
                   "retrieve, move_port and move_host apply to DIMSE nodes only; remove it")
    if node.retrieve not in RETRIEVE_METHODS:
        raise _bad(path, f"node {name}: retrieve = {node.retrieve!r} is not get or move",
                   'write retrieve = "get" (C-GET, the default) or retrieve = "move" (C-MOVE)')
    if node.retrieve == "move" and not 0 < node.move_port < 65536:
        raise _bad(path, f"node {name}: retrieve = \"move\" needs move_port (1-65535)",
                   "add move_port = N, the port the PACS knows for AE title "
                   f"{node.calling_ae} on this machine")
    if node.retrieve == "move" and node.tls and not node.tls_cert:
        raise _bad(path, f"node {name}: a C-MOVE over TLS needs tls_cert and tls_key",
                   "give Lucida's certificate and key: its Storage SCP shows them to the PACS")
    if node.retrieve == "get" and ("move_port" in table or "move_host" in table):
        raise _bad(path, f"node {name} sets {'move_port' if 'move_port' in table else 'move_host'}"
                   " but retrieves with C-GET",
                   'add retrieve = "move", or remove move_port and move_host')


def load_config(path: Path | str | None = None) -> PacsConfig:
    """Read the node file.

    Parameters
    ----------
    path : Path or str, optional
        The file; by default :func:`config_path`.

    Returns
    -------
    PacsConfig
        The nodes and cache settings (no nodes when the file does not exist).

    Raises
    ------
    PacsError
        For a file that cannot be read or parsed, or a node that is incomplete, unknown keys,
        or a secret written into the file.
    """
    path = Path(path) if path is not None else config_path()
    if not path.exists():
        return PacsConfig(path=path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise _bad(path, f"cannot read the PACS node file ({exc})", "check the file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise _bad(path, f"the PACS node file is not valid TOML ({exc})",
                   "fix the syntax; see the README's PACS section") from exc
    unknown = sorted(set(data) - {"nodes", "cache"})
    if unknown:
        raise _bad(path, f"unknown table [{unknown[0]}]", "use [nodes.NAME] and [cache]")
    nodes = {name: _node(path, name, table) for name, table in data.get("nodes", {}).items()}
    cache = data.get("cache", {})
    bad = sorted(set(cache) - _CACHE_KEYS)
    if bad:
        raise _bad(path, f"[cache] has unknown key {bad[0]!r}", "use max_mb and folder")
    try:
        max_mb = float(cache.get("max_mb", DEFAULT_CACHE_MB))
    except (TypeError, ValueError) as exc:
        raise _bad(path, "[cache] max_mb is not a number", "write e.g. max_mb = 2048") from exc
    if max_mb <= 0:
        raise _bad(path, "[cache] max_mb must be positive", "write e.g. max_mb = 2048")
    folder = Path(str(cache["folder"])).expanduser() if cache.get("folder") else None
    return PacsConfig(nodes=nodes, cache_folder=folder, cache_max_mb=max_mb, path=path)


def no_node_hint(path: Path | None = None) -> str:
    """The line a window shows when there is no PACS node: where the node file goes.

    Parameters
    ----------
    path : Path, optional
        The node file; by default :func:`config_path`.
    """
    path = path if path is not None else config_path()
    return (f"No PACS node: add a [nodes.NAME] table to {path} (or name another file with "
            f"{CONFIG_ENV}); the README's PACS section shows one.")


class NodeFile:
    """The node file, read again whenever it has changed since the last read.

    A window reads it on each use, so a node added while it runs is there without a restart.

    Parameters
    ----------
    path : Path or str, optional
        The file; by default :func:`config_path` (which follows ``LUCIDA_PACS_CONFIG``).
    """

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else config_path()
        self._stamp: tuple | None = None
        self._config: PacsConfig | None = None

    def _now(self) -> tuple:
        try:
            stat = self.path.stat()
        except OSError:
            return ()
        return stat.st_mtime_ns, stat.st_size

    def changed(self) -> bool:
        """Whether the file changed (or appeared, or went) since it was last read."""
        return self._config is None or self._now() != self._stamp

    def read(self) -> PacsConfig:
        """The nodes, read again if the file changed.

        Raises
        ------
        PacsError
            As :func:`load_config` does.
        """
        if self.changed():
            stamp = self._now()
            self._config = load_config(self.path)
            self._stamp = stamp
        return self._config
