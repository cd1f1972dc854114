#!/bin/sh
# Install gridgate on a Debian-based gateway (Debian 12/13, Raspberry Pi OS bookworm), or remove it.
#
#   install/install.sh [--source WHEEL_OR_CHECKOUT] [--enable grid,uplink] [--pip-args "..."]
#   install/install.sh --uninstall [--keep-state] [--purge]
#
# DESTDIR=/some/root (or --destdir) stages everything below that root without touching the running
# system (no sysusers, no tmpfiles, no daemon-reload): how packages and the tests use it.
#
# Layout (see docs/technician.md):
#   /opt/gridgate/                         self-contained virtual environment (python3 -m venv)
#   /usr/local/bin/gridgate                -> /opt/gridgate/bin/gridgate
#   /usr/local/lib/systemd/system/         gridgate-{grid,bms,plant,uplink}.service, gridgate.target
#   /usr/local/lib/sysusers.d/gridgate.conf, /usr/local/lib/tmpfiles.d/gridgate.conf
#   /usr/local/share/doc/gridgate/         technician.md, gridgate.toml.example
#   /etc/gridgate/gridgate.toml            the example config, only if there is none yet
#   /etc/gridgate/conf.d/                  drop-ins
# /usr/local keeps everything apart from what dpkg owns; systemd, sysusers and tmpfiles all read
# their /usr/local/lib directories.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
DESTDIR=${DESTDIR:-}
source_path=$here
pip_args=""
enable=""
action=install
keep_state=no
purge=no
python=${PYTHON:-python3}

usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --destdir) DESTDIR=$2; shift ;;
        --source) source_path=$2; shift ;;
        --pip-args) pip_args=$2; shift ;;
        --enable) enable=$2; shift ;;
        --python) python=$2; shift ;;
        --uninstall) action=uninstall ;;
        --keep-state) keep_state=yes ;;
        --purge) purge=yes ;;
        -h|--help) usage 0 ;;
        *) echo "install.sh: unknown option $1" >&2; usage 2 >&2 ;;
    esac
    shift
done

venv=/opt/gridgate
units=/usr/local/lib/systemd/system
sysusers=/usr/local/lib/sysusers.d
tmpfiles=/usr/local/lib/tmpfiles.d
doc=/usr/local/share/doc/gridgate
daemons="grid bms plant uplink"
# Commands that act on the running system only make sense without DESTDIR and under systemd.
live=no
[ -z "$DESTDIR" ] && [ -d /run/systemd/system ] && live=yes

say() { echo "gridgate: $*"; }

install_files() {
    umask 022
    [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ] && { echo "install.sh: run as root (or set DESTDIR)" >&2; exit 1; }
    say "virtual environment in $DESTDIR$venv"
    rm -rf "$DESTDIR$venv"
    mkdir -p "$DESTDIR/opt"
    "$python" -m venv "$DESTDIR$venv"
    # shellcheck disable=SC2086 # pip_args is a list of options on purpose
    "$DESTDIR$venv/bin/python" -m pip install -q --no-compile --disable-pip-version-check \
        $pip_args "$source_path"
    if [ -n "$DESTDIR" ]; then
        # A staged venv must work once moved to /: scripts, pyvenv.cfg and activate name the
        # staging path until rewritten.
        grep -rlI --null -- "$DESTDIR$venv" "$DESTDIR$venv/bin" "$DESTDIR$venv/pyvenv.cfg" |
            xargs -0 -r sed -i "s|$DESTDIR$venv|$venv|g"
        "$DESTDIR$venv/bin/python" -m compileall -f -q -s "$DESTDIR" -p / "$DESTDIR$venv/lib" >/dev/null
    else
        "$venv/bin/python" -m compileall -q "$venv/lib" >/dev/null
    fi

    install -d -m 0755 "$DESTDIR/usr/local/bin" "$DESTDIR$units" "$DESTDIR$sysusers" \
        "$DESTDIR$tmpfiles" "$DESTDIR$doc" "$DESTDIR/etc/gridgate" "$DESTDIR/etc/gridgate/conf.d"
    ln -sfn "$venv/bin/gridgate" "$DESTDIR/usr/local/bin/gridgate"
    for d in $daemons; do
        install -m 0644 "$here/systemd/gridgate-$d.service" "$DESTDIR$units/"
    done
    install -m 0644 "$here/systemd/gridgate.target" "$DESTDIR$units/"
    install -m 0644 "$here/systemd/sysusers.d/gridgate.conf" "$DESTDIR$sysusers/gridgate.conf"
    install -m 0644 "$here/systemd/tmpfiles.d/gridgate.conf" "$DESTDIR$tmpfiles/gridgate.conf"
    install -m 0644 "$here/docs/technician.md" "$DESTDIR$doc/technician.md"
    install -m 0644 "$here/examples/gridgate.toml" "$DESTDIR$doc/gridgate.toml.example"
    # The config is the technician's: never overwritten (a conffile, in Debian's words).
    if [ -e "$DESTDIR/etc/gridgate/gridgate.toml" ]; then
        say "kept the existing /etc/gridgate/gridgate.toml (new example in $doc)"
    else
        install -m 0644 "$here/examples/gridgate.toml" "$DESTDIR/etc/gridgate/gridgate.toml"
    fi

    if [ "$live" = yes ]; then
        systemd-sysusers "$sysusers/gridgate.conf"
        systemd-tmpfiles --create "$tmpfiles/gridgate.conf"
        systemctl daemon-reload
    fi
    # Offline (--root) works without a running systemd, so a staged root gets its links too.
    root_opt=""
    [ -n "$DESTDIR" ] && root_opt="--root=$DESTDIR"
    if command -v systemctl >/dev/null 2>&1 && { [ "$live" = yes ] || [ -n "$DESTDIR" ]; }; then
        systemctl $root_opt --quiet enable gridgate.target
        for d in $(echo "$enable" | tr ',' ' '); do
            systemctl $root_opt --quiet enable "gridgate-$d.service"
        done
    fi
    say "installed; next: edit /etc/gridgate/gridgate.toml, gridgate check-config, then"
    say "  systemctl enable --now gridgate-grid gridgate-uplink   (the daemons this site runs)"
}

uninstall_files() {
    [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ] && { echo "install.sh: run as root (or set DESTDIR)" >&2; exit 1; }
    root_opt=""
    [ -n "$DESTDIR" ] && root_opt="--root=$DESTDIR"
    if [ "$live" = yes ]; then
        systemctl stop gridgate.target $(for d in $daemons; do printf 'gridgate-%s.service ' "$d"; done) || true
    fi
    if command -v systemctl >/dev/null 2>&1 && { [ "$live" = yes ] || [ -n "$DESTDIR" ]; }; then
        for d in $daemons; do
            systemctl $root_opt --quiet disable "gridgate-$d.service" 2>/dev/null || true
        done
        systemctl $root_opt --quiet disable gridgate.target 2>/dev/null || true
    fi
    for d in $daemons; do rm -f "$DESTDIR$units/gridgate-$d.service"; done
    rm -f "$DESTDIR$units/gridgate.target" "$DESTDIR$sysusers/gridgate.conf" \
        "$DESTDIR$tmpfiles/gridgate.conf" "$DESTDIR/usr/local/bin/gridgate"
    rm -rf "$DESTDIR$venv" "$DESTDIR$doc" "$DESTDIR/run/gridgate"
    if [ "$keep_state" = yes ]; then
        say "kept the state directory /var/lib/gridgate (the spool)"
    else
        rm -rf "$DESTDIR/var/lib/gridgate"
    fi
    if [ "$purge" = yes ]; then
        rm -rf "$DESTDIR/etc/gridgate" "$DESTDIR/etc/credstore/mqtt-password" \
            "$DESTDIR/etc/credstore/mqtt-key-password" \
            "$DESTDIR/etc/credstore.encrypted/mqtt-password" \
            "$DESTDIR/etc/credstore.encrypted/mqtt-key-password"
    else
        say "kept /etc/gridgate and the credentials (--purge removes them)"
    fi
    [ "$live" = yes ] && systemctl daemon-reload
    # The gridgate system user stays, as Debian does for every system user: a uid reused by
    # another account would own whatever gridgate left anywhere.
    say "uninstalled"
}

case "$action" in
    install) install_files ;;
    uninstall) uninstall_files ;;
esac
