SUMMARY = "Pure Python OPC UA client and server library (asyncio)"
DESCRIPTION = "OPC UA for asyncio; gridgate subscribes to PLC tags with it."
HOMEPAGE = "https://github.com/FreeOpcUa/opcua-asyncio"
SECTION = "devel/python"
LICENSE = "LGPL-3.0-or-later"
LIC_FILES_CHKSUM = "file://COPYING;md5=e6a600fd5e1d9cbde2d983680233ad02"

# Pinned: the version gridgate's OPC UA driver and its security tests run against.
SRC_URI[sha256sum] = "d741f5e21f189ac0a45b8dda13539c2d49d8d992b9b62d2758efe1bfd3d1454c"

inherit pypi python_hatchling

RDEPENDS:${PN} += "\
    python3-aiosqlite \
    python3-anyio \
    python3-cryptography \
    python3-dateutil \
    python3-pytz \
    python3-sortedcontainers \
    python3-typing-extensions \
    python3-wait-for2 \
"
