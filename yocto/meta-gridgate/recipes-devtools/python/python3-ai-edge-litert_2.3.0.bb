SUMMARY = "LiteRT (TensorFlow Lite) interpreter runtime for the plant anomaly model"
DESCRIPTION = "The LiteRT (formerly TensorFlow Lite) interpreter, installed from the upstream binary wheel, that runs the plant anomaly model."
HOMEPAGE = "https://ai.google.dev/edge/litert"
SECTION = "devel/python"
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

# Only binary wheels exist (building LiteRT from source needs Bazel): the manylinux aarch64 wheel
# for CPython 3.12, the Python of scarthgap and styhead. On a release with another Python the
# wheel and its checksum must change with it; COMPATIBLE_HOST keeps other machines out.
PYPI_PACKAGE = "ai_edge_litert"
PYPI_PACKAGE_EXT = "whl"
SRC_URI = "https://files.pythonhosted.org/packages/cp312/a/ai-edge-litert/ai_edge_litert-${PV}-cp312-cp312-manylinux_2_27_aarch64.whl;downloadfilename=ai_edge_litert-${PV}-cp312-cp312-manylinux_2_27_aarch64.whl;subdir=${BP}"
SRC_URI[sha256sum] = "9891611b23a87cc2ace60e4b5ee9a2ee6f0fb7f395f009470961ae6e6310e1b8"

COMPATIBLE_HOST = "aarch64.*-linux"

inherit python3native python3-dir

S = "${WORKDIR}/${BP}"

do_configure[noexec] = "1"
do_compile[noexec] = "1"

do_install() {
    install -d ${D}${PYTHON_SITEPACKAGES_DIR}
    nativepython3 -m pip install --no-deps --no-index --no-compile --root=${D} \
        --prefix=${prefix} ${S}/*.whl
}

# Prebuilt: stripped and linked upstream against the manylinux_2_27 baseline.
INSANE_SKIP:${PN} += "already-stripped ldflags"

RDEPENDS:${PN} += "\
    python3-flatbuffers \
    python3-numpy \
    python3-protobuf \
    python3-typing-extensions \
"
