SUMMARY = "gridgate: firmware-style daemons for energy-system edge gateways"
DESCRIPTION = "Modbus meters and feeder load flow (grid), battery rack cells (bms), \
               OPC UA plant monitoring (plant) and a durable MQTT uplink, with hardened systemd units."
HOMEPAGE = "https://gridgate.invalid/"
SECTION = "net"
LICENSE = "CLOSED"

# cffi builds the C kernels (native/) at build time, for the target, in out-of-line API mode.
DEPENDS += "python3-cffi python3-cffi-native"

# The gridgate repository; set GRIDGATE_GIT_URI and GRIDGATE_SRCREV in local.conf or a distro
# config to the server and commit to build (see README.md).
GRIDGATE_GIT_URI ??= "git://git.gridgate.invalid/gridgate.git;protocol=https"
GRIDGATE_SRCREV ??= "0000000000000000000000000000000000000000"
SRC_URI = "${GRIDGATE_GIT_URI};branch=main"
SRCREV = "${GRIDGATE_SRCREV}"

S = "${WORKDIR}/git"

inherit python_setuptools_build_meta systemd useradd

USERADD_PACKAGES = "${PN}"
GROUPADD_PARAM:${PN} = "--system gridgate"
USERADD_PARAM:${PN} = "--system --gid gridgate --home-dir ${localstatedir}/lib/gridgate --no-create-home \
                       --shell /sbin/nologin gridgate"

SYSTEMD_PACKAGES = "${PN}"
SYSTEMD_SERVICE:${PN} = "gridgate.target gridgate-grid.service gridgate-bms.service \
                         gridgate-plant.service gridgate-uplink.service"
# The target starts at boot; which daemons run is the site's choice (systemctl enable, or a
# bbappend setting SYSTEMD_AUTO_ENABLE per unit).
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

do_install:append() {
    install -d ${D}${systemd_system_unitdir} ${D}${sysconfdir}/gridgate/conf.d \
        ${D}${nonarch_libdir}/sysusers.d ${D}${nonarch_libdir}/tmpfiles.d ${D}${docdir}/${PN}
    for unit in gridgate.target gridgate-grid.service gridgate-bms.service \
                gridgate-plant.service gridgate-uplink.service; do
        install -m 0644 ${S}/systemd/${unit} ${D}${systemd_system_unitdir}/
    done
    # The units name the Debian install's paths; on an image the venv is the system Python.
    sed -i -e 's|/opt/gridgate/bin/gridgate|${bindir}/gridgate|' \
        -e 's|/usr/local/share/doc/gridgate|${docdir}/${PN}|' \
        ${D}${systemd_system_unitdir}/gridgate*.service ${D}${systemd_system_unitdir}/gridgate.target
    install -m 0644 ${S}/systemd/sysusers.d/gridgate.conf ${D}${nonarch_libdir}/sysusers.d/
    install -m 0644 ${S}/systemd/tmpfiles.d/gridgate.conf ${D}${nonarch_libdir}/tmpfiles.d/
    install -m 0644 ${S}/examples/gridgate.toml ${D}${sysconfdir}/gridgate/gridgate.toml
    install -m 0644 ${S}/docs/technician.md ${D}${docdir}/${PN}/
}

CONFFILES:${PN} = "${sysconfdir}/gridgate/gridgate.toml"
FILES:${PN} += "${systemd_system_unitdir} ${nonarch_libdir}/sysusers.d ${nonarch_libdir}/tmpfiles.d"

# Runtime dependencies: one line per install_requires entry of setup.cfg, with the version the
# entry allows (tests/test_yocto_layer.py keeps the two in step).
RDEPENDS:${PN} += "\
    python3-asyncio \
    python3-asyncua (>= 1.1) \
    python3-cffi (>= 1.16) \
    python3-json \
    python3-logging \
    python3-numpy (>= 1.24) \
    python3-paho-mqtt (>= 2.1) \
    python3-pymodbus (>= 3.9) \
    python3-pyserial (>= 3.5) \
    python3-sdnotify (>= 0.3.2) \
    python3-sqlite3 \
    python3-tomllib \
"
# ai-edge-litert ships binary wheels for x86_64 and aarch64 only (its setup.cfg marker says so).
RDEPENDS:${PN}:append:aarch64 = " python3-ai-edge-litert (>= 1.2)"
RDEPENDS:${PN}:append:x86-64 = " python3-ai-edge-litert (>= 1.2)"
