/*
 * carbide-sandbox: iPXE features for a from-source build (src/config/local/general.h).
 *
 * The sandbox's builder copies this file into the iPXE tree before `make`. The list
 * follows what carbide's own iPXE needs: HTTPS and IPv6 downloads, and the commands
 * its embedded script and a person debugging a boot at the iPXE shell reach for.
 * Each one was compiled for bin-x86_64-efi/snponly.efi and bin/undionly.kpxe at the
 * iPXE commit carbide pins (d7e58c5a).
 */

#define DOWNLOAD_PROTO_HTTPS	/* https:// URLs (chain, kernel, initrd) */
#define NET_PROTO_IPV6		/* IPv6 (already on for EFI builds) */

#define CONSOLE_CMD		/* console: resize or redirect the console */
#define TIME_CMD		/* time: how long a command (a chain) took */
#define PARAM_CMD		/* params/param: POST form parameters */
#define PING_CMD		/* ping: is next-server reachable */
#define NSLOOKUP_CMD		/* nslookup: does a name resolve */
#define REBOOT_CMD		/* reboot */
#define POWEROFF_CMD		/* poweroff */
#define IMAGE_TRUST_CMD		/* imgtrust/imgverify: signed images */
#define DIGEST_CMD		/* md5sum/sha1sum: compare a download with the artifact */
#define VLAN_CMD		/* vcreate/vdestroy: tagged networks */
#define NTP_CMD			/* ntp: set the clock (TLS needs a sane time) */
