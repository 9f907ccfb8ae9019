/*
 * socketDrops(fd) -> number: datagrams the kernel dropped for this socket since it was opened (a full receive
 * buffer, a bad checksum), from SO_MEMINFO's SK_MEMINFO_DROPS (Linux 4.6+). One getsockopt, per socket and exact:
 * cheaper than finding the socket's inode in /proc/net/udp, and it needs no recvmsg control message on every
 * datagram as SO_RXQ_OVFL would (Node's dgram, which carries the DHCP socket, cannot read those anyway).
 */
#include "natd_native.h"
#include <errno.h>
#include <linux/sock_diag.h>
#include <stdint.h>
#include <sys/socket.h>

#ifndef SO_MEMINFO
#define SO_MEMINFO 55
#endif

static napi_value socket_drops(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0)
    return throw_type(env, "expected (fd: number)");
  uint32_t meminfo[SK_MEMINFO_VARS] = {0};
  socklen_t len = sizeof meminfo;
  if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, meminfo, &len) != 0) return throw_errno(env, "getsockopt", "SO_MEMINFO", errno);
  if (len <= SK_MEMINFO_DROPS * sizeof meminfo[0]) return throw_errno(env, "getsockopt", "SO_MEMINFO drops", EINVAL);
  napi_value result;
  napi_create_uint32(env, meminfo[SK_MEMINFO_DROPS], &result);
  return result;
}

void register_socket_drops(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"socketDrops", NULL, socket_drops, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
