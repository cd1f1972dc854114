SUMMARY = "gridgate daemons and the tools a technician uses on the gateway"
DESCRIPTION = "Everything a gridgate gateway runs, plus sqlite3 and SFTP for the technician."
LICENSE = "MIT"

PACKAGE_ARCH = "${TUNE_PKGARCH}"

inherit packagegroup

RDEPENDS:${PN} = "\
    gridgate \
    openssh-sftp-server \
    sqlite3 \
    tzdata \
"
