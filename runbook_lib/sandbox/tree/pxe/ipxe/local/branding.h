/*
 * carbide-sandbox: the name in iPXE's banner (src/config/local/branding.h).
 *
 * The banner then reads "carbide-sandbox <VERSION> -- ...", where VERSION is set on
 * make's command line (the sandbox's version and the iPXE source commit), so a boot
 * log tells a sandbox-built iPXE from carbide's and from a distribution's.
 * Error links keep iPXE's own https://ipxe.org/<code> form: boot-log analysis reads them.
 */

#undef PRODUCT_NAME
#define PRODUCT_NAME "carbide-sandbox iPXE"

#undef PRODUCT_SHORT_NAME
#define PRODUCT_SHORT_NAME "carbide-sandbox"

#undef PRODUCT_TAG_LINE
#define PRODUCT_TAG_LINE "iPXE built by the carbide runbooks' sandbox"
