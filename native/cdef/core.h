/* Generated from native/gridgate.h by the build: edit the header, not this file. */
#define GG_OK 0
#define GG_EINVAL -1
#define GG_ENOCONV -2
int gg_native_version(void);
