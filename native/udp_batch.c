/*
 * Batched UDP I/O for natd's DNS socket: recvmmsg() fills up to a batch of datagrams and JS is called once per
 * batch; sendmmsg() sends the answers of a batch in one call.
 *
 * Why not dgram: Node's UDP socket costs one recvmsg, one JS callback (with its microtask checkpoint), one Buffer
 * and one rinfo object per received datagram, and a request object plus a callback per sent one. For small DNS
 * cache hits that per-datagram cost was most of natd's CPU time (bench/PROFILE.md), twice dnsmasq's per query.
 *
 * The receiver owns its fd from start to stop: libuv must not watch the same fd twice, so the socket is never also
 * handed to dgram. Data arrive in a slab of fixed-size slots and a Uint32Array of (length, address, port) per slot,
 * both allocated by JS and kept referenced here, so nothing is allocated per datagram on this side.
 *
 * issue 14: the same for an IPv6 socket (natd's DNS on the bridge's IPv6 gateway). The receiver sees the socket's
 * family at start; an IPv6 one fills 6 words per slot (length, port, the address as 4 big-endian words), and
 * udpSendBatch6 sends with 5 words per datagram (address words, port). IPv6 sockets are bound to the bridge
 * (SO_BINDTODEVICE), so a link-local peer is answered on the bridge without a scope id.
 */
#define _GNU_SOURCE
#include "natd_native.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

/* Upper bound on a batch (recvmmsg vlen); JS usually asks for fewer. */
#define MAX_BATCH 256
/* Batches read per readable event before yielding to the rest of the event loop (libuv's own UDP reads 32). */
#define BATCHES_PER_WAKEUP 4
/* Per-slot length reported for a datagram larger than its slot (MSG_TRUNC): JS drops it. */
#define TRUNCATED_LENGTH 0xffffffffu
/* A full send buffer (EAGAIN) is waited out this long, this many times, before answers are given up (dnsmasq
 * retries a blocked send in the same way rather than dropping it at once). */

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref on_batch, slab_ref, meta_ref;
  napi_async_context async;
  int fd;
  int stopped;
  unsigned poll_errors; /* in a row, since the last datagram read */
  unsigned max_batch;
  size_t slot_size;
  unsigned char *slab;
  uint32_t *meta;
  struct mmsghdr msgs[MAX_BATCH];
  struct iovec iov[MAX_BATCH];
  int family;      /* AF_INET or AF_INET6 (issue 14), from getsockname at start */
  unsigned stride; /* meta words per slot: 3 (IPv4) or 6 (IPv6) */
  struct sockaddr_in6 from[MAX_BATCH]; /* room for either family */
} receiver_t;

static uint32_t word_at(const unsigned char *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}


static void on_readable(uv_poll_t *handle, int status, int events);

/* libuv reports POLLERR as a negative status and has stopped the handle by then: without a word to JS the socket
 * would never be read again. The pending socket error is read (which clears it), the handle re-armed, and JS told
 * onBatch(status, rearmed). After POLL_ERRORS_MAX errors in a row with no datagram read in between, it is not
 * re-armed (a socket that only errs would spin the loop): JS hears rearmed=false and logs that receiving stopped. */
static void report_poll_error(receiver_t *r, int status) {
  int so_error = 0;
  socklen_t len = sizeof so_error;
  getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
  int rearmed = ++r->poll_errors <= POLL_ERRORS_MAX && uv_poll_start(&r->poll, UV_READABLE, on_readable) == 0;
  report_poll_error_to_js(r->env, r->async, r->on_batch, so_error ? -so_error : status, rearmed);
}

/* Reads whole batches while the socket has data (bounded per wakeup) and hands each to JS. */
static void on_readable(uv_poll_t *handle, int status, int events) {
  receiver_t *r = handle->data;
  (void)events;
  if (r->stopped) return;
  if (status < 0) {
    report_poll_error(r, status);
    return;
  }
  napi_env env = r->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  for (int round = 0; round < BATCHES_PER_WAKEUP && !r->stopped; round++) {
    for (unsigned i = 0; i < r->max_batch; i++) {
      r->msgs[i].msg_hdr.msg_namelen = sizeof r->from[i];
      r->msgs[i].msg_hdr.msg_flags = 0;
    }
    int n;
    do n = recvmmsg(r->fd, r->msgs, r->max_batch, MSG_DONTWAIT, NULL);
    while (n < 0 && errno == EINTR);
    if (n <= 0) break; /* EAGAIN: drained. Other errors (ENOMEM...) are transient for UDP: next wakeup retries. */
    r->poll_errors = 0;
    if (r->family == AF_INET6) {
      for (int i = 0; i < n; i++) {
        const struct msghdr *h = &r->msgs[i].msg_hdr;
        const struct sockaddr_in6 *from = &r->from[i];
        uint32_t *m = r->meta + 6 * i;
        int ipv6 = h->msg_namelen >= sizeof(struct sockaddr_in6) && from->sin6_family == AF_INET6;
        m[0] = (h->msg_flags & MSG_TRUNC) || !ipv6 ? TRUNCATED_LENGTH : r->msgs[i].msg_len;
        m[1] = ntohs(from->sin6_port);
        for (int w = 0; w < 4; w++) m[2 + w] = word_at(from->sin6_addr.s6_addr + 4 * w);
      }
    } else {
      for (int i = 0; i < n; i++) {
        const struct msghdr *h = &r->msgs[i].msg_hdr;
        const struct sockaddr_in *from = (const struct sockaddr_in *)&r->from[i];
        int ipv4 = h->msg_namelen >= sizeof(struct sockaddr_in) && from->sin_family == AF_INET;
        r->meta[3 * i] = (h->msg_flags & MSG_TRUNC) || !ipv4 ? TRUNCATED_LENGTH : r->msgs[i].msg_len;
        r->meta[3 * i + 1] = ntohl(from->sin_addr.s_addr);
        r->meta[3 * i + 2] = ntohs(from->sin_port);
      }
    }
    napi_value callback, global, count, result;
    napi_get_reference_value(env, r->on_batch, &callback);
    napi_get_global(env, &global);
    napi_create_uint32(env, (uint32_t)n, &count);
    /* make_callback: runs nextTicks and microtasks when JS returns, as any libuv-driven callback does */
    if (napi_make_callback(env, r->async, global, callback, 1, &count, &result) == napi_pending_exception) {
      report_exception(env);
      break;
    }
    if ((unsigned)n < r->max_batch) break;
  }
  napi_close_handle_scope(env, scope);
}

static void on_closed(uv_handle_t *handle) {
  receiver_t *r = handle->data;
  napi_delete_reference(r->env, r->on_batch);
  napi_delete_reference(r->env, r->slab_ref);
  napi_delete_reference(r->env, r->meta_ref);
  napi_async_destroy(r->env, r->async);
  free(r);
}

/* udpReceiverStart(fd, slab: Buffer, meta: Uint32Array, slotSize, onBatch(count)) -> handle (external).
 * Takes ownership of fd: udpReceiverStop closes it. */
static napi_value receiver_start(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  int32_t fd = -1, slot_size = 0;
  void *slab = NULL, *meta = NULL;
  size_t slab_len = 0, meta_len = 0;
  napi_typedarray_type meta_type;
  napi_valuetype cb_type;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 5 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 ||
      napi_get_buffer_info(env, argv[1], &slab, &slab_len) != napi_ok ||
      napi_get_typedarray_info(env, argv[2], &meta_type, &meta_len, &meta, NULL, NULL) != napi_ok ||
      meta_type != napi_uint32_array || napi_get_value_int32(env, argv[3], &slot_size) != napi_ok || slot_size < 12 ||
      napi_typeof(env, argv[4], &cb_type) != napi_ok || cb_type != napi_function)
    return throw_type(env, "expected (fd: number, slab: Buffer, meta: Uint32Array, slotSize: number, onBatch: function)");
  struct sockaddr_storage local;
  socklen_t local_len = sizeof local;
  if (getsockname(fd, (struct sockaddr *)&local, &local_len) != 0) return throw_errno(env, "getsockname", "udp receiver", errno);
  int family = local.ss_family == AF_INET6 ? AF_INET6 : AF_INET;
  unsigned stride = family == AF_INET6 ? 6 : 3;
  size_t batch = slab_len / (size_t)slot_size;
  if (meta_len / stride < batch) batch = meta_len / stride;
  if (batch > MAX_BATCH) batch = MAX_BATCH;
  if (batch == 0) return throw_type(env, "slab and meta must hold at least one slot");

  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return throw_type(env, "no event loop");
  receiver_t *r = calloc(1, sizeof *r);
  if (r == NULL) return throw_errno(env, "calloc", "udp receiver", ENOMEM);
  r->env = env;
  r->fd = fd;
  r->family = family;
  r->stride = stride;
  r->max_batch = (unsigned)batch;
  r->slot_size = (size_t)slot_size;
  r->slab = slab;
  r->meta = meta;
  for (unsigned i = 0; i < r->max_batch; i++) {
    r->iov[i].iov_base = r->slab + (size_t)i * r->slot_size;
    r->iov[i].iov_len = r->slot_size;
    r->msgs[i].msg_hdr.msg_iov = &r->iov[i];
    r->msgs[i].msg_hdr.msg_iovlen = 1;
    r->msgs[i].msg_hdr.msg_name = &r->from[i];
  }
  int rc = uv_poll_init_socket(loop, &r->poll, fd);
  if (rc != 0) {
    free(r);
    return throw_errno(env, "uv_poll_init_socket", "udp receiver", -rc);
  }
  r->poll.data = r;
  napi_value resource_name;
  napi_create_string_utf8(env, "natd:udp-batch", NAPI_AUTO_LENGTH, &resource_name);
  napi_async_init(env, NULL, resource_name, &r->async);
  napi_create_reference(env, argv[4], 1, &r->on_batch);
  napi_create_reference(env, argv[1], 1, &r->slab_ref);
  napi_create_reference(env, argv[2], 1, &r->meta_ref);
  rc = uv_poll_start(&r->poll, UV_READABLE, on_readable);
  if (rc != 0) {
    r->stopped = 1;
    uv_close((uv_handle_t *)&r->poll, on_closed);
    return throw_errno(env, "uv_poll_start", "udp receiver", -rc);
  }
  napi_value handle;
  napi_create_external(env, r, NULL, NULL, &handle);
  return handle;
}

/* udpReceiverStop(handle): stops reading and closes the fd. Idempotent; safe inside onBatch. */
static napi_value receiver_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  receiver_t *r = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_external(env, argv[0], (void **)&r) != napi_ok || r == NULL)
    return throw_type(env, "expected (handle: external from udpReceiverStart)");
  if (r->stopped) return NULL;
  r->stopped = 1;
  uv_poll_stop(&r->poll); /* removes the fd from epoll, so closing it next is safe */
  close(r->fd);
  uv_close((uv_handle_t *)&r->poll, on_closed); /* r is freed in on_closed, after any running on_readable */
  return NULL;
}

/* udpSendBatch(fd, datagrams: Buffer[], meta: Uint32Array (address, port per datagram), count)
 * -> undefined when every datagram went out, else { failed, errno } (errno: the last failure's).
 * A datagram the kernel refuses (ENETUNREACH, EMSGSIZE...) is skipped and the rest still go. */
static napi_value send_batch_family(napi_env env, napi_callback_info info, int family) {
  const uint32_t stride = family == AF_INET6 ? 5 : 2;
  size_t argc = 4;
  napi_value argv[4];
  int32_t fd = -1;
  uint32_t count = 0, array_len = 0;
  void *meta = NULL;
  size_t meta_len = 0;
  napi_typedarray_type meta_type;
  bool is_array = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 ||
      napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[1], &array_len) != napi_ok ||
      napi_get_typedarray_info(env, argv[2], &meta_type, &meta_len, &meta, NULL, NULL) != napi_ok ||
      meta_type != napi_uint32_array || napi_get_value_uint32(env, argv[3], &count) != napi_ok)
    return throw_type(env, "expected (fd: number, datagrams: Buffer[], meta: Uint32Array, count: number)");
  if (count > array_len || (size_t)count * stride > meta_len || count > MAX_BATCH)
    return throw_type(env, "count exceeds the datagrams, the meta array or the batch limit");

  struct mmsghdr msgs[MAX_BATCH];
  struct iovec iov[MAX_BATCH];
  struct sockaddr_in6 to[MAX_BATCH]; /* room for either family */
  const uint32_t *m = meta;
  /* A datagram that cannot go (a port outside 1-65535: one spoofed query from port 0 used to make the whole batch
   * throw, dropping the other guests' answers) is skipped and counted; i walks the input, kept the ones sent. */
  uint32_t kept = 0, failed = 0;
  int last_error = 0;
  for (uint32_t j = 0; j < count; j++) {
    napi_value element;
    void *data = NULL;
    size_t len = 0;
    if (napi_get_element(env, argv[1], j, &element) != napi_ok || napi_get_buffer_info(env, element, &data, &len) != napi_ok)
      return throw_type(env, "every datagram must be a Buffer");
    const uint32_t *d = m + (size_t)stride * j;
    uint32_t port = d[stride - 1];
    if (port < 1 || port > 65535) {
      failed++;
      last_error = EINVAL;
      continue;
    }
    uint32_t i = kept++;
    memset(&to[i], 0, sizeof to[i]);
    socklen_t to_len;
    if (family == AF_INET6) {
      to[i].sin6_family = AF_INET6;
      to[i].sin6_port = htons((uint16_t)port);
      for (int w = 0; w < 4; w++) {
        to[i].sin6_addr.s6_addr[4 * w] = (unsigned char)(d[w] >> 24);
        to[i].sin6_addr.s6_addr[4 * w + 1] = (unsigned char)(d[w] >> 16);
        to[i].sin6_addr.s6_addr[4 * w + 2] = (unsigned char)(d[w] >> 8);
        to[i].sin6_addr.s6_addr[4 * w + 3] = (unsigned char)d[w];
      }
      to_len = sizeof(struct sockaddr_in6);
    } else {
      struct sockaddr_in *to4 = (struct sockaddr_in *)&to[i];
      to4->sin_family = AF_INET;
      to4->sin_addr.s_addr = htonl(d[0]);
      to4->sin_port = htons((uint16_t)port);
      to_len = sizeof(struct sockaddr_in);
    }
    iov[i].iov_base = data;
    iov[i].iov_len = len;
    memset(&msgs[i], 0, sizeof msgs[i]);
    msgs[i].msg_hdr.msg_name = &to[i];
    msgs[i].msg_hdr.msg_namelen = to_len;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }

  int gone = 0;
  failed += send_all(fd, msgs, kept, NULL, &last_error, &gone);
  if (gone) return throw_errno(env, "sendmmsg", "udp", last_error);
  if (failed == 0) return NULL;
  napi_value result, failed_value, code;
  napi_create_object(env, &result);
  napi_create_uint32(env, failed, &failed_value);
  napi_set_named_property(env, result, "failed", failed_value);
  napi_create_int32(env, last_error, &code);
  napi_set_named_property(env, result, "errno", code);
  return result;
}

static napi_value send_batch(napi_env env, napi_callback_info info) {
  return send_batch_family(env, info, AF_INET);
}

/* issue 14: udpSendBatch6(fd, datagrams, meta: Uint32Array (4 address words, port per datagram), count) */
static napi_value send_batch6(napi_env env, napi_callback_info info) {
  return send_batch_family(env, info, AF_INET6);
}

void register_udp_batch(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"udpReceiverStart", NULL, receiver_start, NULL, NULL, NULL, napi_default, NULL},
    {"udpReceiverStop", NULL, receiver_stop, NULL, NULL, NULL, napi_default, NULL},
    {"udpSendBatch", NULL, send_batch, NULL, NULL, NULL, napi_default, NULL},
    {"udpSendBatch6", NULL, send_batch6, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
