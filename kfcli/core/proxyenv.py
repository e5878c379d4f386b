"""The proxy and CA-bundle settings kfcli reads itself, on top of what urllib3 does.

urllib3 takes a proxy URL and an SSL context; which proxy applies to which host, and which
extra CA certificates to trust, is read here: HTTPS_PROXY / HTTP_PROXY / ALL_PROXY (either
case), NO_PROXY with the forms curl and requests users write (`*`, domains, IP addresses,
CIDR blocks, any of them with `:port`), loopback always direct; `KFCLI_CA_BUNDLE` / the
profile's `ca_bundle`, else `REQUESTS_CA_BUNDLE`, else `CURL_CA_BUNDLE`. A setting kfcli cannot
use raises `SettingError` naming the variable (the CLI exits 3). Nothing here imports urllib3.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urlsplit

if TYPE_CHECKING:
    from ipaddress import IPv4Address, IPv6Address


class SettingError(ValueError):
    """A proxy or CA bundle setting kfcli cannot use (a malformed proxy URL, an unsupported
    proxy scheme, a CA bundle file that cannot be read). The message names the variable."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


#: Proxy URL schemes and their default ports. http:// and https:// proxies take CONNECT (for
#: https:// targets) and absolute URLs (http:// ones); https:// speaks TLS to the proxy
#: itself. SOCKS needs PySocks (the extra kfcli[socks]); socks5h:// and socks4a:// let the
#: proxy resolve host names.
SCHEMES = {"http": 80, "https": 443, "socks5": 1080, "socks5h": 1080, "socks4": 1080,
           "socks4a": 1080}


class Proxy:
    """A proxy: `auth` is the Proxy-Authorization header for its credentials, `variable`
    the environment variable it came from. (A plain class, not a dataclass: this module is
    imported by every command that makes a request, and a dataclass costs a millisecond.)"""

    def __init__(self, host: str, port: int, auth: str | None, variable: str = "HTTPS_PROXY",
                 user: str | None = None, scheme: str = "http",
                 password: str | None = None) -> None:
        self.host, self.port, self.auth, self.variable = host, port, auth, variable
        self.user, self.scheme, self.password = user, scheme, password

    def __repr__(self) -> str:
        return f"Proxy({self.shown()!r}, variable={self.variable!r})"

    @property
    def address(self) -> str:
        """host:port as a user would write it ([v6]:port); never the credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """The proxy's URL without credentials (what urllib3 is given)."""
        return f"{self.scheme}://{self.address}"

    def shown(self) -> str:
        """The proxy for display: http://user:****@host:port, the password masked."""
        user = f"{quote(self.user, safe='')}:****@" if self.user is not None else ""
        return f"{self.scheme}://{user}{self.address}"


def _proxy_variable(scheme: str, env: Mapping[str, str]) -> tuple[str, str] | None:
    """(name, value) of the first proxy variable set for `scheme`: lower case before upper
    case, as curl and requests read them; ALL_PROXY last."""
    for name in (f"{scheme}_proxy", f"{scheme.upper()}_PROXY", "all_proxy", "ALL_PROXY"):
        value = env.get(name, "").strip()
        if value:
            return name, value
    return None


def proxy_for(scheme: str, host: str, port: int | None = None) -> Proxy | None:
    """The proxy from HTTPS_PROXY / HTTP_PROXY / ALL_PROXY (either case) unless NO_PROXY
    covers `host` (and `port`) or `host` is a loopback address. A proxy URL kfcli cannot use
    raises SettingError naming the variable."""
    env = os.environ
    found = _proxy_variable(scheme, env)
    if not found:
        return None
    no_proxy = env.get("no_proxy") or env.get("NO_PROXY") or ""
    if _is_loopback(host) or _bypassed(host, port, no_proxy):
        return None
    return parse_proxy(*found)


def parse_proxy(variable: str, url: str) -> Proxy:
    hint = (f"set {variable} to http://HOST:PORT, with user:password@ before the host if the "
            "proxy wants credentials")
    try:
        parts = urlsplit(url if "://" in url else "http://" + url)
        proxy_port = parts.port
    except ValueError as exc:  # a bad port, an unclosed [v6 address
        raise SettingError(f"{variable} is not a valid proxy URL ({_url_problem(exc)})",
                           hint=hint) from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise SettingError(f"{variable} names a {scheme}:// proxy; kfcli supports http://, "
                           "https:// and (with the extra kfcli[socks]) socks5:// proxies",
                           hint=hint)
    if scheme.startswith("socks") and not socks_available():
        raise SettingError(f"{variable} names a {scheme}:// proxy: SOCKS proxies need the "
                           "extra kfcli[socks] (PySocks), which is not installed",
                           hint="pip install 'kfcli[socks]', or use an HTTP proxy")
    if not parts.hostname:
        raise SettingError(f"{variable} is not a valid proxy URL (no host name)", hint=hint)
    if proxy_port == 0:
        raise SettingError(f"{variable} is not a valid proxy URL (port 0)", hint=hint)
    auth = user = password = None
    if parts.username is not None:
        import base64

        from kfcli.core.redact import register_secret

        user, password = unquote(parts.username), unquote(parts.password or "")
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        auth = "Basic " + basic
        if parts.password:
            register_secret(password)
            register_secret(parts.password)
        register_secret(basic)
    return Proxy(parts.hostname, proxy_port or SCHEMES[scheme], auth, variable, user, scheme,
                 password)


def socks_available() -> bool:
    """Whether PySocks (the extra kfcli[socks]) is installed; found without importing it."""
    from importlib.util import find_spec

    return find_spec("socks") is not None


def _url_problem(exc: ValueError) -> str:
    text = str(exc)
    if "out of range" in text:
        return "the port is not in 1-65535"
    if "Port could not be cast" in text or "invalid literal" in text:
        return "the port is not a number"
    if "IPv6" in text or "[" in text:
        return "an unclosed [IPv6 address]"
    return "cannot be parsed"


def _ip(host: str) -> IPv4Address | IPv6Address | None:
    import ipaddress

    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return None


def _is_loopback(host: str) -> bool:
    """localhost and every loopback address (127.0.0.0/8, ::1) never use a proxy."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    ip = _ip(host)
    return ip is not None and ip.is_loopback


def _bypassed(host: str, port: int | None, no_proxy: str) -> bool:
    """Whether NO_PROXY covers host[:port]. Entries, comma separated: `*`; a domain
    (`example.com` and `.example.com` both cover it and its subdomains); an IP address; a
    CIDR block (`10.0.0.0/8`); any of these with `:port`; `[v6]` or `[v6]:port`."""
    import ipaddress

    host = host.lower().rstrip(".")
    ip = _ip(host)
    for entry in (e.strip().lower() for e in no_proxy.replace(" ", ",").split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        entry_port = None
        if entry.startswith("["):  # [v6] or [v6]:port
            close = entry.find("]")
            entry, rest = entry[1:close], entry[close + 1:]
            if rest.startswith(":") and rest[1:].isdigit():
                entry_port = int(rest[1:])
        elif entry.count(":") == 1:  # host:port or v4:port (a bare v6 has several colons)
            name, _, number = entry.partition(":")
            if number.isdigit():
                entry, entry_port = name, int(number)
        if entry_port is not None and port is not None and entry_port != port:
            continue
        if "/" in entry:
            try:
                net = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                continue
            if ip is not None and ip.version == net.version and ip in net:
                return True
            continue
        entry_ip = _ip(entry)
        if entry_ip is not None:
            if ip is not None and ip == entry_ip:
                return True
            continue
        domain = entry.lstrip(".").lstrip("*.").rstrip(".")
        if domain and (host == domain or host.endswith("." + domain)):
            return True
    return False


class CaBundle:
    """Extra CA certificates: `path`, and `variable`, where it was set (KFCLI_CA_BUNDLE, the
    ca_bundle setting of a profile, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE)."""

    def __init__(self, path: str, variable: str) -> None:
        self.path, self.variable = path, variable

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CaBundle) and (self.path, self.variable) == (
            other.path, other.variable)

    def __hash__(self) -> int:
        return hash((self.path, self.variable))

    def __repr__(self) -> str:
        return f"CaBundle({self.path!r}, {self.variable!r})"


def ca_bundle(path: str | None, where: str) -> CaBundle | None:
    """The extra CA certificates to trust: `path` (from `where`), else REQUESTS_CA_BUNDLE,
    else CURL_CA_BUNDLE. A file (or directory of hashed certificates) that cannot be read
    raises SettingError naming where it was set."""
    if not path:
        for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
            if os.environ.get(name, "").strip():
                path, where = os.environ[name].strip(), name
                break
        else:
            return None
    path = os.path.expanduser(path)
    hint = f"point {where} at a PEM file holding your CA's certificate, or unset it"
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            with open(path, "rb") as f:
                f.read(1)
    except OSError as exc:
        raise SettingError(f"CA bundle {path} from {where} cannot be read "
                           f"({exc.strerror or exc})", hint=hint) from None
    return CaBundle(path, where)
