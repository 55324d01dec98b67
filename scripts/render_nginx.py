"""Renders nginx/relaychat.conf.template for a native nginx; prints the main config's path.

The template is shared with docker compose; here it is wrapped in a minimal main config whose
pid, logs and temp files live in the output folder, so nginx runs without touching /etc or /var.

    python -m scripts.render_nginx OUT_DIR --host 127.0.0.1 --port 9000 --backend 127.0.0.1:5000 \
        --centrifugo 127.0.0.1:8000 --max-body 497664 --chat-read-seconds 300
"""

from __future__ import annotations

import argparse
import grp
import ipaddress
import os
import pwd
import re
import subprocess
from pathlib import Path

from scripts.system_commands import MissingCommand, require

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "nginx" / "relaychat.conf.template"
VARIABLE = re.compile(r"\$\{(RELAY_[A-Z_]+)\}")
# An address or CIDR range as nginx's config may hold it: digits, dots, colons and a prefix only
# (Python's parser also takes an IPv6 zone id, which may hold anything: `fe80::1%x,0.0.0.0/0`
# parses, as ::/0).
ADDRESS_OR_RANGE = re.compile(r"[0-9A-Fa-f.:]+(/[0-9]+)?")

MAIN = """\
{user}worker_processes auto;
# Each WebSocket holds two connections (client and Centrifugo) and a file descriptor for each.
worker_rlimit_nofile 65536;
pid {out}/nginx.pid;
error_log {out}/error.log warn;
events {{
    worker_connections 32768;
}}
http {{
    include {mime_types};
    default_type application/octet-stream;
    access_log {out}/access.log;
    sendfile on;
    keepalive_timeout 65;
    client_body_temp_path {out}/tmp/body;
    proxy_temp_path {out}/tmp/proxy;
    fastcgi_temp_path {out}/tmp/fastcgi;
    uwsgi_temp_path {out}/tmp/uwsgi;
    scgi_temp_path {out}/tmp/scgi;
    include {out}/relaychat.conf;
}}
"""


def substitute(template: str, values: dict[str, str]) -> str:
    missing = sorted(set(VARIABLE.findall(template)) - values.keys())
    if missing:
        raise SystemExit(f"render_nginx: no value for {', '.join(missing)}")
    return VARIABLE.sub(lambda m: values[m.group(1)], template)


def mime_types() -> str:
    """mime.types beside the config path nginx was built with (/etc/nginx on Debian)."""
    nginx = require("nginx")  # in /usr/sbin, off a user's PATH
    info = subprocess.run([nginx, "-V"], capture_output=True, text=True, check=True).stderr
    conf = re.search(r"--conf-path=(\S+)", info)
    return str(Path(conf.group(1) if conf else "/etc/nginx/nginx.conf").parent / "mime.types")


def worker_user(static_root: Path) -> str:
    """The `user` line for a master started as root: its workers run as the owner of the page.

    Without it they run as `nobody`, who cannot read a checkout under a directory only its owner
    may enter (anything under root's home, say), and every request is a bare 404. Started as
    anyone else, nginx runs its workers as that user and the line would only earn a warning.
    """
    if os.geteuid() != 0:
        return ""
    info = static_root.stat() if static_root.exists() else static_root.parent.stat()
    user = pwd.getpwuid(info.st_uid).pw_name
    group = grp.getgrgid(info.st_gid).gr_name
    return f"user {user} {group};\n"


def _servers(addresses: str) -> str:
    """`a,b` (several processes of a kind, `make run-cluster`) as the template's one
    `server ${...};` line repeated: `a;\n    server b`."""
    return ";\n    server ".join(address.strip() for address in addresses.split(","))


def address_ranges(ranges: str) -> list[str]:
    """`a,b` as addresses or CIDR ranges; ValueError naming the first item that is neither (it
    goes into the config as it is written)."""
    items = [item.strip() for item in ranges.split(",")]
    for item in items:
        try:
            if not ADDRESS_OR_RANGE.fullmatch(item):
                raise ValueError(item)
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"{item!r} is not an address or CIDR range") from None
    return items


def trusted_proxies(ranges: str) -> str:
    """`a,b` as the template's one `set_real_ip_from ${...};` line repeated, as `_servers`
    does for `server` (nginx/trusted-proxy.envsh does the same in the image); SystemExit for
    anything but addresses and CIDR ranges."""
    try:
        return ";\n    set_real_ip_from ".join(address_ranges(ranges))
    except ValueError as exc:
        raise SystemExit(f"render_nginx: {exc}") from None


def render(
    out: Path,
    port: int,
    backend: str,
    centrifugo: str,
    static_root: Path,
    max_body: int,
    host: str = "127.0.0.1",
    trusted_proxy: str = "127.0.0.1",
    chat_read_seconds: int = 300,
) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "tmp").mkdir(exist_ok=True)
    values = {
        "RELAY_NGINX_ADDR": host,
        "RELAY_NGINX_PORT": str(port),
        "RELAY_BACKEND_ADDR": _servers(backend),
        "RELAY_CENTRIFUGO_ADDR": _servers(centrifugo),
        # Literal addresses (or names looked up at start): no resolver (compose sets these).
        "RELAY_RESOLVER": "",
        "RELAY_RESOLVE": "",
        "RELAY_STATIC_ROOT": str(static_root),
        "RELAY_MAX_BODY": str(max_body),
        "RELAY_TRUSTED_PROXY": trusted_proxies(trusted_proxy),
        "RELAY_CHAT_READ_SECONDS": str(chat_read_seconds),
    }
    (out / "relaychat.conf").write_text(substitute(TEMPLATE.read_text(), values))
    main = out / "nginx.conf"
    user = worker_user(static_root)
    main.write_text(MAIN.format(user=user, out=out, mime_types=mime_types()))
    return main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--backend", default="127.0.0.1:5000", help="host:port[,host:port...]")
    parser.add_argument("--centrifugo", default="127.0.0.1:8000", help="host:port[,...]")
    parser.add_argument("--static-root", type=Path, default=ROOT / "frontend" / "dist")
    parser.add_argument("--max-body", type=int, required=True, help="body limit in bytes")
    parser.add_argument(
        "--trusted-proxy",
        default="127.0.0.1",
        help="the address (or CIDR range; several: comma-separated) whose X-Forwarded-For "
        "names the client",
    )
    parser.add_argument(
        "--chat-read-seconds",
        type=int,
        default=300,
        help="how long nginx waits for a chat route's response (past MAX_STREAM_SECONDS)",
    )
    args = parser.parse_args()
    out = args.out.resolve()
    try:
        main_config = render(
            out,
            args.port,
            args.backend,
            args.centrifugo,
            args.static_root,
            args.max_body,
            args.host,
            args.trusted_proxy,
            args.chat_read_seconds,
        )
    except MissingCommand as missing:
        raise SystemExit(f"render_nginx: {missing}") from None
    print(main_config)


if __name__ == "__main__":
    main()
