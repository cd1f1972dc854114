SUMMARY = "Example gateway image: gridgate with systemd, SSH and nothing else"
DESCRIPTION = "A minimal image with systemd as init, OpenSSH for the technician and the gridgate packagegroup with its daemons."
LICENSE = "MIT"

inherit core-image

IMAGE_FEATURES += "ssh-server-openssh"
IMAGE_INSTALL:append = " packagegroup-gridgate"

# systemd as init (units, credentials, sysusers, tmpfiles); set in the distro or local.conf:
#   INIT_MANAGER = "systemd"
REQUIRED_DISTRO_FEATURES = "systemd"
inherit features_check
