/*
 * issue 14: natd's Router Advertisements. One raw ICMPv6 socket bound to the bridge (SO_BINDTODEVICE) that
 *  - receives only Router Solicitations (ICMP6_FILTER blocks every other type in the kernel, so a guest's junk ICMPv6
 *    never reaches JS), sent to ff02::2 (joined here) or to the bridge's own addresses, each with its IPv6 source and
 *    the hop limit it arrived with (IPV6_RECVHOPLIMIT: RFC 4861 6.1.1 wants 255, i.e. not routed);
 *  - sends Router Advertisements built in TypeScript (src/ipv6/ra.ts), with hop limit 255 for unicast and
 *    multicast, from the bridge's link-local address (RFC 4861 6.1.2: hosts drop RAs from any other source), set
 *    per message with IPV6_PKTINFO; the kernel fills the ICMPv6 checksum. The kernel's own choice is not enough:
 *    while the link-local address is tentative (DAD, about 2 s after the bridge gets carrier, so right when natd
 *    starts) it picks the gateway's (nodad) ULA or global address, and every guest drops that RA. With the
 *    link-local address tentative or missing, the send fails (EINVAL / EADDRNOTAVAIL) and the caller counts it.
 * Receiving uses uv_poll as arp_probe.c does; each solicitation is one JS call: onPacket(data, source, hopLimit).
 * A poll error is reported as onPacket(negativeErrno, rearmed), as the other receivers do.
 */
#define _GNU_SOURCE
#include "natd_native.h"
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

/* Solicitations read per readable event before yielding to the event loop. */
#define MAX_READS_PER_WAKEUP 64
/* An RS is small; anything longer is cut (MSG_TRUNC) and handed over truncated, where the parser drops it. */
#define MAX_PACKET 1280

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref on_packet;
  napi_async_context async;
  int fd;
  int ifindex;
  int stopped;
  int poll_errors;
} icmp6_t;

static void deliver(icmp6_t *s, const unsigned char *data, size_t len, const struct in6_addr *source, int hop_limit) {
  napi_env env = s->env;
  napi_value callback, global, argv[3], result;
  void *copy;
  napi_get_reference_value(env, s->on_packet, &callback);
  napi_get_global(env, &global);
  napi_create_buffer_copy(env, len, data, &copy, &argv[0]);
  napi_create_buffer_copy(env, 16, source, &copy, &argv[1]);
  napi_create_int32(env, hop_limit, &argv[2]);
  if (napi_make_callback(env, s->async, global, callback, 3, argv, &result) == napi_pending_exception) report_exception(env);
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  icmp6_t *s = handle->data;
  (void)events;
  if (s->stopped) return;
  if (status < 0) {
    int so_error = 0;
    socklen_t len = sizeof so_error;
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
    int rearmed = ++s->poll_errors <= POLL_ERRORS_MAX && uv_poll_start(&s->poll, UV_READABLE, on_readable) == 0;
    report_poll_error_to_js(s->env, s->async, s->on_packet, so_error ? -so_error : status, rearmed);
    return;
  }
  s->poll_errors = 0;
  unsigned char buf[MAX_PACKET];
  union {
    char raw[CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(struct in6_pktinfo))];
    struct cmsghdr align;
  } control;
  for (int reads = 0; reads < MAX_READS_PER_WAKEUP && !s->stopped; reads++) {
    struct sockaddr_in6 from;
    struct iovec iov = {buf, sizeof buf};
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_name = &from;
    msg.msg_namelen = sizeof from;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.raw;
    msg.msg_controllen = sizeof control.raw;
    ssize_t n = recvmsg(s->fd, &msg, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    int hop_limit = -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT && c->cmsg_len >= CMSG_LEN(sizeof(int)))
        memcpy(&hop_limit, CMSG_DATA(c), sizeof(int));
    }
    if (msg.msg_namelen < sizeof from) memset(&from.sin6_addr, 0, sizeof from.sin6_addr);
    napi_handle_scope scope;
    if (napi_open_handle_scope(s->env, &scope) != napi_ok) return;
    deliver(s, buf, (size_t)n, &from.sin6_addr, hop_limit);
    napi_close_handle_scope(s->env, scope);
  }
}

static void on_closed(uv_handle_t *handle) {
  icmp6_t *s = handle->data;
  napi_delete_reference(s->env, s->on_packet);
  napi_async_destroy(s->env, s->async);
  free(s);
}

static int open_icmp6_socket(const char *device, int ifindex) {
  int fd = socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMPV6);
  if (fd < 0) return -1;
  struct icmp6_filter filter;
  ICMP6_FILTER_SETBLOCKALL(&filter);
  ICMP6_FILTER_SETPASS(ND_ROUTER_SOLICIT, &filter);
  int hops = 255, on = 1, off = 0;
  struct ipv6_mreq all_routers;
  memset(&all_routers, 0, sizeof all_routers);
  inet_pton(AF_INET6, "ff02::2", &all_routers.ipv6mr_multiaddr);
  all_routers.ipv6mr_interface = (unsigned)ifindex;
  if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, device, (socklen_t)strlen(device)) != 0 ||
      setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &filter, sizeof filter) != 0 ||
      setsockopt(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &on, sizeof on) != 0 ||
      setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &hops, sizeof hops) != 0 ||
      setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof hops) != 0 ||
      setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &off, sizeof off) != 0 ||
      setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex, sizeof ifindex) != 0 ||
      setsockopt(fd, IPPROTO_IPV6, IPV6_JOIN_GROUP, &all_routers, sizeof all_routers) != 0) {
    int err = errno;
    close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

/* icmp6Open(device, onPacket(data: Buffer, source: Buffer, hopLimit: number) | onPacket(negErrno, rearmed)) -> handle */
static napi_value icmp6_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  char device[IF_NAMESIZE + 1];
  size_t device_len = 0;
  napi_valuetype cb_type;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_get_value_string_utf8(env, argv[0], device, sizeof device, &device_len) != napi_ok || device_len == 0 ||
      device_len >= IF_NAMESIZE || napi_typeof(env, argv[1], &cb_type) != napi_ok || cb_type != napi_function)
    return throw_type(env, "expected (device: string, onPacket: function)");
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return throw_type(env, "no event loop");
  int ifindex = (int)if_nametoindex(device);
  if (ifindex == 0) return throw_errno(env, "if_nametoindex", device, errno);
  icmp6_t *s = calloc(1, sizeof *s);
  if (s == NULL) return throw_errno(env, "calloc", "icmp6", ENOMEM);
  s->fd = open_icmp6_socket(device, ifindex);
  if (s->fd < 0) {
    int err = errno;
    free(s);
    return throw_errno(env, "socket", device, err);
  }
  s->env = env;
  s->ifindex = ifindex;
  int rc = uv_poll_init_socket(loop, &s->poll, s->fd);
  if (rc != 0) {
    close(s->fd);
    free(s);
    return throw_errno(env, "uv_poll_init_socket", "icmp6", -rc);
  }
  s->poll.data = s;
  napi_value resource_name;
  napi_create_string_utf8(env, "natd:icmp6", NAPI_AUTO_LENGTH, &resource_name);
  napi_async_init(env, NULL, resource_name, &s->async);
  napi_create_reference(env, argv[1], 1, &s->on_packet);
  rc = uv_poll_start(&s->poll, UV_READABLE, on_readable);
  if (rc != 0) {
    s->stopped = 1;
    close(s->fd);
    uv_close((uv_handle_t *)&s->poll, on_closed);
    return throw_errno(env, "uv_poll_start", "icmp6", -rc);
  }
  napi_value handle;
  napi_create_external(env, s, NULL, NULL, &handle);
  return handle;
}

static icmp6_t *get_socket(napi_env env, napi_value value) {
  icmp6_t *s = NULL;
  if (napi_get_value_external(env, value, (void **)&s) != napi_ok) return NULL;
  return s;
}

/* The first link-local address on interface `ifindex` (tentative ones included: the kernel refuses those as a
 * source). 0, or -1 with errno (EADDRNOTAVAIL: none). One netlink dump per call: RAs are rare and rate-limited. */
static int link_local_of(int ifindex, struct in6_addr *out) {
  struct ifaddrs *list = NULL;
  if (getifaddrs(&list) != 0) return -1;
  int found = 0;
  for (struct ifaddrs *a = list; a != NULL && !found; a = a->ifa_next) {
    if (a->ifa_addr == NULL || a->ifa_addr->sa_family != AF_INET6 || a->ifa_name == NULL) continue;
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)a->ifa_addr;
    if (!IN6_IS_ADDR_LINKLOCAL(&sin6->sin6_addr) || if_nametoindex(a->ifa_name) != (unsigned)ifindex) continue;
    *out = sin6->sin6_addr;
    found = 1;
  }
  freeifaddrs(list);
  if (!found) errno = EADDRNOTAVAIL;
  return found ? 0 : -1;
}

/* icmp6Send(handle, destination: Buffer (16 bytes), message: Buffer) -> bytes sent; throws the errno on failure. */
static napi_value icmp6_send(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  void *dest = NULL, *data = NULL;
  size_t dest_len = 0, data_len = 0;
  icmp6_t *s;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 || (s = get_socket(env, argv[0])) == NULL ||
      napi_get_buffer_info(env, argv[1], &dest, &dest_len) != napi_ok || dest_len != 16 ||
      napi_get_buffer_info(env, argv[2], &data, &data_len) != napi_ok || data_len == 0)
    return throw_type(env, "expected (handle, destination: 16-byte Buffer, message: Buffer)");
  if (s->stopped) return throw_errno(env, "sendto", "icmp6 closed", EBADF);
  struct sockaddr_in6 to;
  memset(&to, 0, sizeof to);
  to.sin6_family = AF_INET6;
  memcpy(&to.sin6_addr, dest, 16);
  to.sin6_scope_id = (uint32_t)s->ifindex;
  struct in6_pktinfo source;
  memset(&source, 0, sizeof source);
  if (link_local_of(s->ifindex, &source.ipi6_addr) != 0) return throw_errno(env, "getifaddrs", "icmp6 link-local source", errno);
  source.ipi6_ifindex = (unsigned)s->ifindex;
  union {
    char raw[CMSG_SPACE(sizeof(struct in6_pktinfo))];
    struct cmsghdr align;
  } control;
  memset(&control, 0, sizeof control);
  struct iovec iov = {data, data_len};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_name = &to;
  msg.msg_namelen = sizeof to;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.raw;
  msg.msg_controllen = sizeof control.raw;
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = IPPROTO_IPV6;
  c->cmsg_type = IPV6_PKTINFO;
  c->cmsg_len = CMSG_LEN(sizeof source);
  memcpy(CMSG_DATA(c), &source, sizeof source);
  ssize_t n;
  do n = sendmsg(s->fd, &msg, MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0) return throw_errno(env, "sendmsg", "icmp6 from the link-local address", errno);
  napi_value result;
  napi_create_uint32(env, (uint32_t)n, &result);
  return result;
}

/* icmp6Close(handle): idempotent; safe inside onPacket. */
static napi_value icmp6_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  icmp6_t *s;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || (s = get_socket(env, argv[0])) == NULL)
    return throw_type(env, "expected (handle: external from icmp6Open)");
  if (s->stopped) return NULL;
  s->stopped = 1;
  uv_poll_stop(&s->poll);
  close(s->fd);
  uv_close((uv_handle_t *)&s->poll, on_closed);
  return NULL;
}

void register_icmp6_socket(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"icmp6Open", NULL, icmp6_open, NULL, NULL, NULL, napi_default, NULL},
    {"icmp6Send", NULL, icmp6_send, NULL, NULL, NULL, napi_default, NULL},
    {"icmp6Close", NULL, icmp6_close, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
