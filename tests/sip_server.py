"""A private kamailio on loopback for the softphone tests: registrar and proxy over SIP on
websockets (``ws://127.0.0.1:<port>/ws``), with its own configuration in a temporary folder,
started and stopped by a fixture as ``tests/services.py`` does with a private Redis.

The configuration follows kamailio's own websocket examples (the websocket module's README,
"event_route[xhttp:request]" and its NAT section; Debian's ``/etc/kamailio/kamailio.cfg``):
``xhttp`` receives the HTTP upgrade and ``ws_handle_handshake()`` turns it into a SIP
websocket; ``nathelper`` makes a browser's ``*.invalid`` contact reachable
(``fix_nated_register`` for REGISTER, ``add_contact_alias`` on requests and replies,
``handle_ruri_alias`` for in-dialog requests); locations are kept in memory (``usrloc``
``db_mode`` 0). REGISTER and INVITE are digest-authenticated against the passwords the test
gives (``auth``'s ``pv_www_authenticate`` / ``pv_proxy_authenticate``), so a softphone
that sends no or the wrong password is refused as a PBX would refuse it.

Teleforge's validation (an INVITE refused with ``X-Teleforge-Error`` response headers,
"Create a Call", WebRTC) is stood in for by one rule: an INVITE to ``refuse_number`` is
answered 403 with the header ``refuse_error``. Media never passes through here: the two
browsers send RTP to each other (host candidates on this machine).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.conftest import require

MODULES = (
    "kex", "corex", "tm", "tmx", "sl", "rr", "pv", "maxfwd", "usrloc", "registrar",
    "textops", "siputils", "xlog", "sanity", "nathelper", "xhttp", "websocket", "auth",
)
_MODULE_DIRS = ("/usr/lib/x86_64-linux-gnu/kamailio/modules", "/usr/lib/kamailio/modules",
                "/usr/lib64/kamailio/modules", "/usr/local/lib64/kamailio/modules")

CONFIG = r"""#!KAMAILIO
# Written by tests/sip_server.py for one test run.
debug=2
log_stderror=yes
fork=yes
children=2
tcp_children=4
auto_aliases=no
listen=tcp:127.0.0.1:{port}
alias="{domain}"
tcp_accept_no_cl=yes
tcp_connection_lifetime=3605
mpath="{mpath}"

{loads}

modparam("usrloc", "db_mode", 0)
modparam("registrar", "max_expires", 3600)
modparam("nathelper|registrar", "received_avp", "$avp(RECEIVED)")
modparam("rr", "append_fromtag", 0)
modparam("websocket", "keepalive_mechanism", 0)

event_route[xhttp:request] {{
    set_reply_close();
    set_reply_no_connect();
    if ($Rp != {port}) {{
        xhttp_reply("403", "Forbidden", "", "");
        exit;
    }}
    if ($hdr(Upgrade) =~ "websocket" && $hdr(Connection) =~ "Upgrade" && $rm =~ "GET") {{
        if (ws_handle_handshake()) {{
            exit;
        }}
    }}
    xhttp_reply("404", "Not Found", "", "");
}}

route[PASSWORD] {{
    $var(pw) = "";
{passwords}
}}

request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (nat_uac_test(64)) {{
        # From a websocket: make the browser's contact reachable over its connection.
        force_rport();
        if (is_method("REGISTER")) {{
            fix_nated_register();
        }} else if (!add_contact_alias()) {{
            sl_send_reply("400", "Bad Request");
            exit;
        }}
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            route(RELAY);
        }}
        exit;
    }}
    if (!is_method("ACK")) {{
        if (t_precheck_trans()) {{
            t_check_trans();
            exit;
        }}
        t_check_trans();
    }}
    if (has_totag()) {{
        if (loose_route()) {{
            if (!isdsturiset()) {{
                handle_ruri_alias();
            }}
            route(RELAY);
        }}
        if (is_method("ACK")) {{
            if (t_check_trans()) {{
                route(RELAY);
            }}
            exit;
        }}
        sl_send_reply("404", "Not here");
        exit;
    }}
    if (is_method("OPTIONS") && $rU == $null) {{
        sl_send_reply("200", "Keepalive");
        exit;
    }}
    route(PASSWORD);
    if (is_method("REGISTER")) {{
        if (!pv_www_authenticate("$td", "$var(pw)", "0")) {{
            www_challenge("$td", "0");
            exit;
        }}
        consume_credentials();
        if (!save("location")) {{
            sl_reply_error();
        }}
        exit;
    }}
    if (!is_method("INVITE")) {{
        sl_send_reply("405", "Method Not Allowed");
        exit;
    }}
    if (!pv_proxy_authenticate("$fd", "$var(pw)", "0")) {{
        proxy_challenge("$fd", "0");
        exit;
    }}
    if ($au != $fU) {{
        sl_send_reply("403", "Use your own extension");
        exit;
    }}
    consume_credentials();
    if ($rU == "{refuse_number}") {{
        # Stands in for Teleforge's validation: its errors come back as response headers.
        append_to_reply("X-Teleforge-Error: {refuse_error}\r\n");
        sl_send_reply("403", "Validation failed");
        exit;
    }}
    remove_hf("Route");
    record_route();
    if (!lookup("location")) {{
        sl_send_reply("404", "Not Found");
        exit;
    }}
    route(RELAY);
}}

route[RELAY] {{
    if (is_method("INVITE|UPDATE")) {{
        t_on_reply("WS_REPLY");
    }}
    if (!t_relay()) {{
        sl_reply_error();
    }}
    exit;
}}

onreply_route[WS_REPLY] {{
    if (nat_uac_test(64)) {{
        add_contact_alias();
    }}
}}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _module_dir() -> str | None:
    for folder in _MODULE_DIRS:
        if Path(folder, "websocket.so").is_file():
            return folder
    return None


def _quoted(value: str) -> str:
    """A value safe inside a double-quoted kamailio string (the tests' own values)."""
    if any(ch in value for ch in '"\\$\r\n'):
        raise ValueError(f"not usable in the kamailio configuration: {value!r}")
    return value


class PrivateKamailio:
    """kamailio on a free loopback port: ``ws_url`` for SIP.js, ``domain`` its SIP domain.

    ``passwords`` maps each SIP user (an extension, a number) to its password.
    """

    def __init__(
        self, passwords: dict[str, str], domain: str = "pbx.test",
        refuse_number: str = "0820009999", refuse_error: str = "callee: number not allowed",
    ) -> None:
        binary = shutil.which("kamailio") or (
            "/usr/sbin/kamailio" if Path("/usr/sbin/kamailio").is_file() else None
        )
        if binary is None:
            require("kamailio", FileNotFoundError("kamailio not installed (make test installs "
                                                  "kamailio and kamailio-websocket-modules)"))
        mpath = _module_dir()
        if mpath is None:
            require("kamailio websocket module",
                    FileNotFoundError("websocket.so missing: install kamailio-websocket-modules"))
        self.binary = str(binary)
        self.port = _free_port()
        self.domain = domain
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"
        self.folder = Path(tempfile.mkdtemp(prefix="desk-kamailio-"))
        self.log_path = self.folder / "kamailio.log"
        passwords_cfg = "\n".join(
            f'    if ($au == "{_quoted(user)}") {{ $var(pw) = "{_quoted(password)}"; }}'
            for user, password in passwords.items()
        )
        self.config = self.folder / "kamailio.cfg"
        self.config.write_text(CONFIG.format(
            port=self.port, domain=_quoted(domain), mpath=mpath,
            loads="\n".join(f'loadmodule "{name}.so"' for name in MODULES),
            passwords=passwords_cfg, refuse_number=_quoted(refuse_number),
            refuse_error=_quoted(refuse_error),
        ))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        check = subprocess.run([self.binary, "-c", "-f", str(self.config)],
                               capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise RuntimeError(f"kamailio refused its configuration:\n{check.stderr[-3000:]}")
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [self.binary, "-DD", "-E", "-f", str(self.config), "-m", "64", "-M", "8",
             "-P", str(self.folder / "kamailio.pid"), "-Y", str(self.folder)],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "LC_ALL": "C"},
        )
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kamailio stopped at start:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"kamailio did not start listening:\n{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        shutil.rmtree(self.folder, ignore_errors=True)
