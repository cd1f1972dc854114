SUMMARY = "Modbus protocol stack in Python (TCP, RTU, ASCII; client and server)"
DESCRIPTION = "pymodbus implements the Modbus protocol for asyncio; gridgate polls meters with its TCP and RTU clients."
HOMEPAGE = "https://github.com/pymodbus-dev/pymodbus"
SECTION = "devel/python"
LICENSE = "BSD-3-Clause"
LIC_FILES_CHKSUM = "file://LICENSE;md5=12a490c6cffa2e76a6df8aa1fa29e183"

# Pinned: gridgate needs >= 3.9 (async client API, FramerType) and is tested with 3.16.1;
# meta-python's recipe is older on scarthgap.
SRC_URI[sha256sum] = "19e571826dff37860afc31c845c1fd2fb72acffca02a233506b32d94fa022c33"

inherit pypi python_setuptools_build_meta

RDEPENDS:${PN} += "\
    python3-asyncio \
    python3-logging \
    python3-pyserial \
"
