/*
 * natd's native helpers: the few socket calls Node cannot make itself.
 *
 * - Device-bound UDP/TCP sockets (SO_BINDTODEVICE): without them, a socket on 0.0.0.0:67 also answers the uplink
 *   and sends OFFERs out of the default route. Node adopts the returned fd (dgram bind({fd}) / net listen({fd})).
 * - SO_NO_CHECK: DHCP replies leave with UDP checksum 0 (legal for IPv4), so a guest never sees the partial checksum
 *   that tx offload leaves on a veth/tap (the old iptables CHECKSUM --checksum-fill problem).
 * - SIOCSARP: seeds the neighbour entry for a unicast DHCP reply to a client that has no address yet (RFC 2131 4.1).
 * - sd_notify: systemd's notify socket is a unix datagram socket, which Node cannot send to.
 * - Batched UDP I/O for the DNS socket (udp_batch.c) and the forwarder's upstream sockets (udp_client.c).
 * - A fixed malloc trim threshold, set once when the addon loads (see init).
 *
 * Every failure throws a JS Error whose `code` is the errno name (ENODEV, EPERM, ...) and whose `syscall` names the
 * call, so the TypeScript side can turn it into a clear message. Nothing here aborts the process.
 */
#define _GNU_SOURCE
#include "natd_native.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Room to detect names that are too long (IFNAMSIZ - 1 characters at most). */
#define DEVICE_BUF 64

/* Receive buffer asked for every device-bound UDP socket (DHCP, DNS): see open_udp_socket. */
#define UDP_RCVBUF (4 * 1024 * 1024)

#ifndef SO_NO_CHECK
#define SO_NO_CHECK 11
#endif

static const char *errno_name(int err) {
  switch (err) {
    case ENODEV: return "ENODEV";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case EADDRINUSE: return "EADDRINUSE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EINVAL: return "EINVAL";
    case ENOENT: return "ENOENT";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EMFILE: return "EMFILE";
    case ENOBUFS: return "ENOBUFS";
    case ENXIO: return "ENXIO";
    case EAGAIN: return "EAGAIN";
    case EBADF: return "EBADF";
    case ENOTSOCK: return "ENOTSOCK";
    case EMSGSIZE: return "EMSGSIZE";
    case ENETUNREACH: return "ENETUNREACH";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case ENOMEM: return "ENOMEM";
    default: return "EUNKNOWN";
  }
}

napi_value throw_errno(napi_env env, const char *syscall, const char *detail, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s(%s): %s", syscall, detail ? detail : "", strerror(err));
  napi_value code, message, error, sys;
  napi_create_string_utf8(env, errno_name(err), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sys);
  napi_set_named_property(env, error, "syscall", sys);
  napi_value errnum;
  napi_create_int32(env, err, &errnum);
  napi_set_named_property(env, error, "errno", errnum);
  napi_throw(env, error);
  return NULL;
}

napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG", msg);
  return NULL;
}

void report_exception(napi_env env) {
  napi_value err;
  if (napi_get_and_clear_last_exception(env, &err) == napi_ok) napi_fatal_exception(env, err);
}

void report_poll_error_to_js(napi_env env, napi_async_context async, napi_ref callback_ref, int status, int rearmed) {
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value callback, global, argv[2], result;
  napi_get_reference_value(env, callback_ref, &callback);
  napi_get_global(env, &global);
  napi_create_int32(env, status, &argv[0]);
  napi_get_boolean(env, rearmed, &argv[1]);
  if (napi_make_callback(env, async, global, callback, 2, argv, &result) == napi_pending_exception) report_exception(env);
  napi_close_handle_scope(env, scope);
}

/* Reads a string argument into buf; returns 0 on success. */
static int get_string(napi_env env, napi_value value, char *buf, size_t size) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, value, buf, size, &len) != napi_ok) return -1;
  if (len >= size - 1) return -1;
  return 0;
}

/* An IPv4 or (issue 14) IPv6 socket address, as the openers bind it. */
typedef struct {
  union {
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
  } sa;
  socklen_t len;
  int family;
} bind_addr_t;

/* Parses (device, address, port) shared by both socket openers; the address is dotted IPv4 or IPv6 text. */
static int get_bind_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv, char *device,
                         bind_addr_t *addr) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3) {
    throw_type(env, "expected (device: string, address: string, port: number, ...)");
    return -1;
  }
  char address[64];
  int32_t port = 0;
  if (get_string(env, argv[0], device, DEVICE_BUF) != 0 || device[0] == '\0' || strlen(device) >= IFNAMSIZ) {
    throw_type(env, "device must be a non-empty interface name of at most 15 characters");
    return -1;
  }
  if (get_string(env, argv[1], address, sizeof address) != 0) {
    throw_type(env, "address must be a string");
    return -1;
  }
  if (napi_get_value_int32(env, argv[2], &port) != napi_ok || port < 0 || port > 65535) {
    throw_type(env, "port must be an integer 0-65535");
    return -1;
  }
  memset(addr, 0, sizeof *addr);
  if (inet_pton(AF_INET, address, &addr->sa.v4.sin_addr) == 1) {
    addr->sa.v4.sin_family = AF_INET;
    addr->sa.v4.sin_port = htons((uint16_t)port);
    addr->len = sizeof addr->sa.v4;
    addr->family = AF_INET;
    return 0;
  }
  /* issue 14: natd's DNS on the bridge's IPv6 gateway (a global or ULA address: no scope id needed) */
  if (inet_pton(AF_INET6, address, &addr->sa.v6.sin6_addr) == 1) {
    addr->sa.v6.sin6_family = AF_INET6;
    addr->sa.v6.sin6_port = htons((uint16_t)port);
    addr->len = sizeof addr->sa.v6;
    addr->family = AF_INET6;
    return 0;
  }
  throw_type(env, "address must be an IPv4 or IPv6 address");
  return -1;
}

/* IPv6 sockets take IPv6 only: an IPv4 peer never reaches them as ::ffff:a.b.c.d (natd has IPv4 sockets of its own). */
static int set_v6only(napi_env env, int fd, int family) {
  int one = 1;
  if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) {
    int err = errno; close(fd); throw_errno(env, "setsockopt", "IPV6_V6ONLY", err); return -1;
  }
  return 0;
}

/* Applies the options every natd socket needs; on failure closes fd and throws. */
static int prepare_socket(napi_env env, int fd, const char *device) {
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
    int err = errno; close(fd); throw_errno(env, "setsockopt", "SO_REUSEADDR", err); return -1;
  }
  if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, device, (socklen_t)strlen(device) + 1) != 0) {
    int err = errno; close(fd); throw_errno(env, "setsockopt", device, err); return -1;
  }
  return 0;
}

static int get_bool(napi_env env, napi_value value) {
  bool out = false;
  napi_valuetype t;
  if (napi_typeof(env, value, &t) == napi_ok && t == napi_boolean) napi_get_value_bool(env, value, &out);
  return out ? 1 : 0;
}

/* openUdpSocket(device, address, port, noChecksum?, broadcast?) -> fd; address IPv4 or (issue 14) IPv6. broadcast: SO_BROADCAST, which only DHCP
 * needs (replies to clients without an address); without it the kernel refuses to send to a broadcast address, so
 * the DNS socket cannot be tricked into broadcasting an answer to a spoofed source (issue 12). */
static napi_value open_udp_socket(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  char device[DEVICE_BUF];
  bind_addr_t addr;
  napi_get_undefined(env, &argv[3]);
  napi_get_undefined(env, &argv[4]);
  if (get_bind_args(env, info, 5, argv, device, &addr) != 0) return NULL;
  int no_check = get_bool(env, argv[3]);
  int broadcast = get_bool(env, argv[4]);

  if (no_check && addr.family != AF_INET) return throw_type(env, "noChecksum is for IPv4 sockets only");
  if (broadcast && addr.family != AF_INET) return throw_type(env, "broadcast is for IPv4 sockets only");
  int fd = socket(addr.family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", "udp", errno);
  if (prepare_socket(env, fd, device) != 0 || set_v6only(env, fd, addr.family) != 0) return NULL;
  int one = 1;
  if (broadcast && setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one) != 0) {
    int err = errno; close(fd); return throw_errno(env, "setsockopt", "SO_BROADCAST", err);
  }
  if (no_check && setsockopt(fd, SOL_SOCKET, SO_NO_CHECK, &one, sizeof one) != 0) {
    int err = errno; close(fd); return throw_errno(env, "setsockopt", "SO_NO_CHECK", err);
  }
  /* Room for a burst (200 VMs booting at once: the default ~208 KiB holds about 120 DHCP datagrams). FORCE passes
   * net.core.rmem_max with CAP_NET_ADMIN; without it, SO_RCVBUF up to rmem_max. Best effort either way. */
  int rcvbuf = UDP_RCVBUF;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  if (bind(fd, (struct sockaddr *)&addr.sa, addr.len) != 0) {
    int err = errno; close(fd); return throw_errno(env, "bind", device, err);
  }
  napi_value result;
  napi_create_int32(env, fd, &result);
  return result;
}

/* openTcpListener(device, address, port, backlog) -> fd (already listening) */
static napi_value open_tcp_listener(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  char device[DEVICE_BUF];
  bind_addr_t addr;
  napi_get_undefined(env, &argv[3]);
  if (get_bind_args(env, info, 4, argv, device, &addr) != 0) return NULL;
  int32_t backlog = 128;
  napi_valuetype t;
  if (napi_typeof(env, argv[3], &t) == napi_ok && t == napi_number) napi_get_value_int32(env, argv[3], &backlog);

  int fd = socket(addr.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", "tcp", errno);
  if (prepare_socket(env, fd, device) != 0 || set_v6only(env, fd, addr.family) != 0) return NULL;
  if (bind(fd, (struct sockaddr *)&addr.sa, addr.len) != 0) {
    int err = errno; close(fd); return throw_errno(env, "bind", device, err);
  }
  if (listen(fd, backlog) != 0) {
    int err = errno; close(fd); return throw_errno(env, "listen", device, err);
  }
  napi_value result;
  napi_create_int32(env, fd, &result);
  return result;
}

static int parse_mac(const char *text, unsigned char out[6]) {
  unsigned int b[6];
  char tail;
  if (sscanf(text, "%x:%x:%x:%x:%x:%x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &tail) != 6) return -1;
  for (int i = 0; i < 6; i++) {
    if (b[i] > 255) return -1;
    out[i] = (unsigned char)b[i];
  }
  return 0;
}

/* setNeighbour(device, address, mac): a complete ARP entry, so a unicast reply to a client without an address
 * goes out without an ARP request it could not answer. */
static napi_value set_neighbour(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  char device[DEVICE_BUF], address[64], mac_text[64];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 ||
      get_string(env, argv[0], device, sizeof device) != 0 || get_string(env, argv[1], address, sizeof address) != 0 ||
      get_string(env, argv[2], mac_text, sizeof mac_text) != 0 || strlen(device) >= sizeof((struct arpreq *)0)->arp_dev)
    return throw_type(env, "expected (device: string, address: string, mac: string)");

  struct arpreq req;
  memset(&req, 0, sizeof req);
  struct sockaddr_in *pa = (struct sockaddr_in *)&req.arp_pa;
  pa->sin_family = AF_INET;
  if (inet_pton(AF_INET, address, &pa->sin_addr) != 1) return throw_type(env, "address must be a dotted IPv4 address");
  unsigned char mac[6];
  if (parse_mac(mac_text, mac) != 0) return throw_type(env, "mac must look like 52:54:00:12:34:56");
  req.arp_ha.sa_family = ARPHRD_ETHER;
  memcpy(req.arp_ha.sa_data, mac, 6);
  req.arp_flags = ATF_COM;
  memcpy(req.arp_dev, device, strlen(device) + 1); /* length checked above */

  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", "arp", errno);
  int rc = ioctl(fd, SIOCSARP, &req);
  int err = errno;
  close(fd);
  if (rc != 0) return throw_errno(env, "ioctl", "SIOCSARP", err);
  return NULL;
}

/* sdNotify(state) -> boolean: true when sent, false when not run by systemd (no NOTIFY_SOCKET). */
static napi_value sd_notify(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  char state[512];
  napi_value result;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      get_string(env, argv[0], state, sizeof state) != 0)
    return throw_type(env, "expected (state: string)");
  const char *path = getenv("NOTIFY_SOCKET");
  if (path == NULL || path[0] == '\0') {
    napi_get_boolean(env, false, &result);
    return result;
  }
  struct sockaddr_un sun;
  memset(&sun, 0, sizeof sun);
  sun.sun_family = AF_UNIX;
  size_t len = strlen(path);
  if (len >= sizeof sun.sun_path) return throw_errno(env, "sd_notify", path, ENAMETOOLONG);
  memcpy(sun.sun_path, path, len);
  if (sun.sun_path[0] == '@') sun.sun_path[0] = '\0'; /* abstract namespace */
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", "unix", errno);
  ssize_t sent = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sun,
                        (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
  int err = errno;
  close(fd);
  if (sent < 0) return throw_errno(env, "sendto", path, err);
  napi_get_boolean(env, true, &result);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
#ifdef __GLIBC__
  /* A fixed trim threshold (setting it also stops glibc from raising it by itself) hands memory freed at the top of
   * an arena back to the kernel. Without it V8's compiler threads keep several MiB freed but resident in their
   * arenas: about 6 MiB of natd's peak RSS with 10,000 leases (issue 7), for no measurable CPU cost.
   * Setting either threshold also freezes the other one: glibc stops raising the mmap threshold (128 KiB) as well, so
   * every allocation of 128 KiB or more, such as the name router's 128 KiB socket reads (issue 17), became an
   * mmap + page faults + munmap (20,000 such Buffers: 0.5 s instead of 0.05 s). 1 MiB keeps those on the heap, where
   * the trim threshold still returns freed memory at the top; larger blocks are still mapped and unmapped at free.
   * (glibc's own dynamic threshold would go up to 32 MiB.) */
  mallopt(M_TRIM_THRESHOLD, 128 * 1024);
  mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
#endif
  napi_property_descriptor props[] = {
    {"openUdpSocket", NULL, open_udp_socket, NULL, NULL, NULL, napi_default, NULL},
    {"openTcpListener", NULL, open_tcp_listener, NULL, NULL, NULL, napi_default, NULL},
    {"setNeighbour", NULL, set_neighbour, NULL, NULL, NULL, napi_default, NULL},
    {"sdNotify", NULL, sd_notify, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  register_udp_batch(env, exports);
  register_udp_client(env, exports);
  register_peer_cred(env, exports);
  register_arp_probe(env, exports);
  register_icmp6_socket(env, exports); /* issue 14 */
  register_udp6_socket(env, exports); /* issue 14: DHCPv6 */
  register_socket_drops(env, exports);
  register_journal_writer(env, exports); /* issue 18 */
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
