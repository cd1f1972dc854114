SUMMARY = "MQTT version 5.0/3.1.1 client class"
DESCRIPTION = "The Eclipse Paho MQTT client; gridgate publishes its spool upstream with it."
HOMEPAGE = "https://eclipse.dev/paho/"
SECTION = "devel/python"
LICENSE = "EPL-2.0 | BSD-3-Clause"
LIC_FILES_CHKSUM = "file://LICENSE.txt;md5=8e5f264c6988aec56808a3a11e77b913"

# Pinned: gridgate uses the 2.x callback API (CallbackAPIVersion.VERSION2), >= 2.1.
PYPI_PACKAGE = "paho_mqtt"
SRC_URI[sha256sum] = "bcf706f03f1f49e0fc3ae166dc7b67ee35463496f8bdfd7c9c36181f6ba635c9"

inherit pypi python_hatchling

RDEPENDS:${PN} += "\
    python3-io \
    python3-logging \
    python3-netclient \
    python3-ssl \
    python3-threading \
"
