"""Security policy and mode names, without asyncua: the CLI and config checks use them cheaply."""

SECURE_POLICIES = ("Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss")
# None sends everything in the clear; Basic128Rsa15 and Basic256 rest on SHA-1 (deprecated by
# the OPC Foundation). Allowed only with an explicit allow_insecure.
INSECURE_POLICIES = ("None", "Basic128Rsa15", "Basic256")
MODES = ("None", "Sign", "SignAndEncrypt")
