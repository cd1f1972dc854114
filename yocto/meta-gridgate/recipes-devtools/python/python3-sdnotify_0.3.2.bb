SUMMARY = "A pure Python implementation of systemd's service notification protocol"
DESCRIPTION = "sd_notify from Python; gridgate reports READY, STATUS and the watchdog with it."
HOMEPAGE = "https://github.com/bb4242/sdnotify"
SECTION = "devel/python"
LICENSE = "MIT"
LIC_FILES_CHKSUM = "file://LICENSE.txt;md5=cc572ccc4b18a4b7d13be5d01bc8213e"

SRC_URI[sha256sum] = "73977fc746b36cc41184dd43c3fe81323e7b8b06c2bb0826c4f59a20c56bb9f1"

inherit pypi setuptools3

RDEPENDS:${PN} += "python3-io"
