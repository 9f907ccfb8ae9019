/*
 * issue 14: openUdp6Socket(device, port, group?) -> fd: a UDP socket on [::]:port that only sees the bridge
 * (SO_BINDTODEVICE, which Node's dgram cannot set), IPv6 only, and, with `group`, a member of that link-local
 * multicast group on the bridge (DHCPv6: ff02::1:2, All_DHCP_Relay_Agents_and_Servers). Multicast it sends leaves
 * through the bridge and does not loop back. The fd is handed to a dgram 'udp6' socket (bind({ fd })).
 */
#include "natd_native.h"
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define UDP6_RCVBUF (4 * 1024 * 1024)
#define UDP6_SNDBUF (4 * 1024 * 1024)

static napi_value open_udp6_socket(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2)
    return throw_type(env, "expected (device: string, port: number, group?: string)");
  char device[IFNAMSIZ + 1];
  size_t len = 0;
  if (napi_get_value_string_utf8(env, argv[0], device, sizeof device, &len) != napi_ok || len == 0 || len >= IFNAMSIZ)
    return throw_type(env, "device must be a non-empty interface name of at most 15 characters");
  int32_t port = 0;
  if (napi_get_value_int32(env, argv[1], &port) != napi_ok || port < 0 || port > 65535) return throw_type(env, "port must be an integer 0-65535");
  struct ipv6_mreq group;
  memset(&group, 0, sizeof group);
  int join = 0;
  if (argc >= 3) {
    napi_valuetype t;
    napi_typeof(env, argv[2], &t);
    if (t == napi_string) {
      char text[INET6_ADDRSTRLEN];
      if (napi_get_value_string_utf8(env, argv[2], text, sizeof text, &len) != napi_ok || inet_pton(AF_INET6, text, &group.ipv6mr_multiaddr) != 1)
        return throw_type(env, "group must be an IPv6 multicast address");
      join = 1;
    }
  }
  unsigned ifindex = if_nametoindex(device);
  if (ifindex == 0) return throw_errno(env, "if_nametoindex", device, errno);

  int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", "udp6", errno);
  int one = 1, off = 0, hops = 1, idx = (int)ifindex;
  const char *step = NULL;
  if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) step = "IPV6_V6ONLY";
  else if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) step = "SO_REUSEADDR";
  else if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, device, (socklen_t)strlen(device) + 1) != 0) step = device;
  else if (setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &idx, sizeof idx) != 0) step = "IPV6_MULTICAST_IF";
  else if (setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &off, sizeof off) != 0) step = "IPV6_MULTICAST_LOOP";
  else if (setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof hops) != 0) step = "IPV6_MULTICAST_HOPS";
  if (step) {
    int err = errno; close(fd); return throw_errno(env, "setsockopt", step, err);
  }
  /* best effort, as the DHCPv4 socket: room for a burst of Solicits */
  int rcvbuf = UDP6_RCVBUF;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  /* a reply to a source that does not answer neighbour solicitation (a spoofed link-local) waits in the kernel's
   * neighbour queue, charged to this socket, for the ~3 s resolution takes: room for many such, so the socket stays
   * writable for real clients (the transport also stops answering Solicits while sends back up) */
  int sndbuf = UDP6_SNDBUF;
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf) != 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  struct sockaddr_in6 addr;
  memset(&addr, 0, sizeof addr);
  addr.sin6_family = AF_INET6;
  addr.sin6_port = htons((uint16_t)port);
  addr.sin6_addr = in6addr_any;
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    int err = errno; close(fd); return throw_errno(env, "bind", device, err);
  }
  if (join) {
    group.ipv6mr_interface = ifindex;
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_JOIN_GROUP, &group, sizeof group) != 0) {
      int err = errno; close(fd); return throw_errno(env, "setsockopt", "IPV6_JOIN_GROUP", err);
    }
  }
  napi_value result;
  napi_create_int32(env, fd, &result);
  return result;
}

void register_udp6_socket(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"openUdp6Socket", NULL, open_udp6_socket, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
