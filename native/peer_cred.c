/*
 * getPeerCredentials(fd) -> { pid, uid, gid }: who is on the other end of a connected unix socket (SO_PEERCRED).
 *
 * The control socket's file mode is one guard; this is the other. The kernel records the peer's credentials at
 * connect(), so the answer cannot be forged by the client and holds even if someone loosens the socket's mode.
 * Node exposes no such call; the daemon passes the accepted connection's fd (net.Socket's _handle.fd).
 */
#define _GNU_SOURCE
#include "natd_native.h"
#include <errno.h>
#include <sys/socket.h>

static napi_value get_peer_credentials(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) return throw_type(env, "getPeerCredentials(fd): fd must be a non-negative integer");

  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return throw_errno(env, "getsockopt", "SO_PEERCRED", errno);

  napi_value result, pid, uid, gid;
  napi_create_object(env, &result);
  napi_create_int32(env, cred.pid, &pid);
  napi_create_uint32(env, cred.uid, &uid);
  napi_create_uint32(env, cred.gid, &gid);
  napi_set_named_property(env, result, "pid", pid);
  napi_set_named_property(env, result, "uid", uid);
  napi_set_named_property(env, result, "gid", gid);
  return result;
}

void register_peer_cred(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"getPeerCredentials", NULL, get_peer_credentials, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
