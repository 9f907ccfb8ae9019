/*
 * The forwarder's upstream UDP sockets: a pool of sockets, each connected to one server from a random port, read
 * together by one receiver group; queries go out with one sendmsg() that puts the attempt's id in front of the
 * client's bytes.
 *
 * Why not dgram: every dgram send() resolves its address through a nextTick, builds a request object and a
 * callback, and each received datagram costs a JS callback (with its microtask checkpoint), a Buffer and an rinfo
 * object. For a cache miss that was about a third of natd's CPU time. Here a send is one N-API call and one
 * syscall with no copy of the query in JS (the id goes in its own iovec), a connected socket keeps its route and
 * only ever receives datagrams from its server's address and port.
 *
 * Why a group rather than udp_batch.c's receiver per socket: the pool spreads replies over dozens of sockets, so a
 * receiver per socket meant a JS call per socket per wakeup, each with ~2 replies. The group is an epoll set the
 * event loop watches as one fd: each wakeup reads every ready socket with recvmmsg() into one slab, then calls JS
 * once. JS runs only after the reads, so sockets it closes or opens during the call cannot confuse them; each
 * socket carries a tag chosen by JS, reported with each of its datagrams.
 *
 * Receive errors (an ICMP port/host unreachable reported on a connected socket) are reported as entries of their
 * own, so they are visible rather than silently consumed.
 *
 * IPv4 only. IPv6 upstreams stay on dgram.
 */
#define _GNU_SOURCE
#include "natd_native.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>

/* DNS header: the id is its first two octets. */
#define DNS_HEADER_LENGTH 12
/* Upper bound on the slots of a group's slab (datagrams per JS call). */
#define GROUP_MAX_BATCH 128
/* Ready sockets taken per epoll_wait(). */
#define GROUP_MAX_EVENTS 64
/* JS calls per readable event before yielding to the rest of the event loop. */
#define GROUP_ROUNDS_PER_WAKEUP 4
/* Entry lengths that are not lengths: a datagram larger than its slot, a receive error (errno in the address). */
#define ENTRY_TRUNCATED 0xffffffffu
#define ENTRY_ERROR 0xfffffffeu
/* u32 fields per entry: length, address, port, tag. */
#define META_FIELDS 4

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref on_batch, slab_ref, meta_ref;
  napi_async_context async;
  int epfd;
  int stopped;
  unsigned poll_errors; /* in a row, since the last read that found data */
  unsigned max_batch;
  size_t slot_size;
  unsigned char *slab;
  uint32_t *meta;
  struct mmsghdr msgs[GROUP_MAX_BATCH];
  struct iovec iov[GROUP_MAX_BATCH];
  struct sockaddr_in from[GROUP_MAX_BATCH];
} group_t;

/* openUdpClientSocket(address, port) -> fd: a non-blocking UDP socket connected to address:port. connect() binds it
 * to a port the kernel picks at random from the ephemeral range (the same choice as bind to port 0). */
static napi_value open_client_socket(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  char address[64];
  size_t len = 0;
  int32_t port = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_get_value_string_utf8(env, argv[0], address, sizeof address, &len) != napi_ok || len >= sizeof address - 1 ||
      napi_get_value_int32(env, argv[1], &port) != napi_ok || port < 1 || port > 65535)
    return throw_type(env, "expected (address: string, port: 1-65535)");
  struct sockaddr_in to;
  memset(&to, 0, sizeof to);
  to.sin_family = AF_INET;
  to.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, address, &to.sin_addr) != 1) return throw_type(env, "address must be a dotted IPv4 address");

  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", "udp", errno);
  if (connect(fd, (struct sockaddr *)&to, sizeof to) != 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, "connect", address, err);
  }
  napi_value result;
  napi_create_int32(env, fd, &result);
  return result;
}

/* udpSendQuery(fd, query: Uint8Array, id) -> 0 when sent; a positive errno when not (EAGAIN, ENETUNREACH...); a
 * negative errno when sent after the socket reported an error for an earlier datagram (-ECONNREFUSED: an ICMP port
 * unreachable came back). The datagram is `query` with its first two octets replaced by `id`; `query` itself is not
 * changed. Throws only for wrong arguments or an fd that is not a socket (a bug, not a network state). */
static napi_value send_query(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t fd = -1;
  uint32_t id = 0;
  void *data = NULL;
  size_t length = 0;
  napi_typedarray_type type;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 ||
      napi_get_typedarray_info(env, argv[1], &type, &length, &data, NULL, NULL) != napi_ok || type != napi_uint8_array ||
      napi_get_value_uint32(env, argv[2], &id) != napi_ok || id > 0xffff)
    return throw_type(env, "expected (fd: number, query: Uint8Array, id: 0-65535)");
  if (length < DNS_HEADER_LENGTH) return throw_type(env, "query is shorter than a DNS header");

  unsigned char id_bytes[2] = {(unsigned char)(id >> 8), (unsigned char)(id & 0xff)};
  struct iovec iov[2] = {
    {.iov_base = id_bytes, .iov_len = 2},
    {.iov_base = (unsigned char *)data + 2, .iov_len = length - 2},
  };
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = iov;
  msg.msg_iovlen = 2;
  ssize_t sent;
  int err = 0, stale = 0;
  for (int tries = 0; tries < 2; tries++) {
    if (tries == 1) stale = err;
    do sent = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (sent < 0 && errno == EINTR);
    err = sent < 0 ? errno : 0;
    /* A connected socket reports a pending ICMP error for an EARLIER datagram by failing the next send (which is
     * not sent). That error is now cleared: send this one again rather than lose it. */
    if (err == 0 || err == EAGAIN || err == EWOULDBLOCK || err == EBADF || err == ENOTSOCK || err == EINVAL ||
        err == EMSGSIZE)
      break;
  }
  if (err == EBADF || err == ENOTSOCK) return throw_errno(env, "sendmsg", "udp", err);
  napi_value result;
  napi_create_int32(env, err != 0 ? err : -stale, &result);
  return result;
}


/* Reads what one ready socket holds into the free slots from `filled` on; returns the new fill level. A socket
 * with more than the free slots keeps the rest (the epoll set is level-triggered: it is reported again). */
static unsigned read_socket(group_t *g, int fd, uint32_t tag, unsigned filled) {
  unsigned want = g->max_batch - filled;
  int n;
  do n = recvmmsg(fd, g->msgs + filled, want, MSG_DONTWAIT, NULL);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK) return filled;
    /* e.g. ECONNREFUSED: an ICMP error for an earlier send. Reading it cleared it; queued datagrams are read on
     * the next wakeup. */
    uint32_t *m = g->meta + (size_t)META_FIELDS * filled;
    m[0] = ENTRY_ERROR;
    m[1] = (uint32_t)err;
    m[2] = 0;
    m[3] = tag;
    return filled + 1;
  }
  for (int k = 0; k < n; k++) {
    unsigned i = filled + (unsigned)k;
    const struct msghdr *h = &g->msgs[i].msg_hdr;
    uint32_t *m = g->meta + (size_t)META_FIELDS * i;
    int ipv4 = h->msg_namelen >= sizeof(struct sockaddr_in) && g->from[i].sin_family == AF_INET;
    m[0] = (h->msg_flags & MSG_TRUNC) || !ipv4 ? ENTRY_TRUNCATED : g->msgs[i].msg_len;
    m[1] = ntohl(g->from[i].sin_addr.s_addr);
    m[2] = ntohs(g->from[i].sin_port);
    m[3] = tag;
    g->msgs[i].msg_hdr.msg_namelen = sizeof g->from[i]; /* ready for the next read into this slot */
    g->msgs[i].msg_hdr.msg_flags = 0;
  }
  return filled + (unsigned)n;
}

static void on_group_readable(uv_poll_t *handle, int status, int events);

/* libuv reports POLLERR on the epoll fd as a negative status and has stopped the handle by then: the upstream
 * replies would never be read again, silently. The handle is re-armed and JS told onBatch(status, rearmed); after
 * POLL_ERRORS_MAX in a row with nothing read in between it is not re-armed (it would spin) and JS says so. */
static void report_group_poll_error(group_t *g, int status) {
  int rearmed = ++g->poll_errors <= POLL_ERRORS_MAX && uv_poll_start(&g->poll, UV_READABLE, on_group_readable) == 0;
  report_poll_error_to_js(g->env, g->async, g->on_batch, status, rearmed);
}

/* Reads every ready socket (no JS runs meanwhile), then hands the batch to JS in one call. */
static void on_group_readable(uv_poll_t *handle, int status, int events) {
  group_t *g = handle->data;
  (void)events;
  if (g->stopped) return;
  if (status < 0) {
    report_group_poll_error(g, status);
    return;
  }
  napi_env env = g->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  for (int round = 0; round < GROUP_ROUNDS_PER_WAKEUP && !g->stopped; round++) {
    struct epoll_event ready[GROUP_MAX_EVENTS];
    int n;
    do n = epoll_wait(g->epfd, ready, GROUP_MAX_EVENTS, 0);
    while (n < 0 && errno == EINTR);
    unsigned filled = 0;
    for (int e = 0; e < n && filled < g->max_batch; e++) {
      filled = read_socket(g, (int)(ready[e].data.u64 & 0xffffffffu), (uint32_t)(ready[e].data.u64 >> 32), filled);
    }
    if (filled == 0) break;
    g->poll_errors = 0;
    napi_value callback, global, count, result;
    napi_get_reference_value(env, g->on_batch, &callback);
    napi_get_global(env, &global);
    napi_create_uint32(env, filled, &count);
    /* make_callback: runs nextTicks and microtasks when JS returns, as any libuv-driven callback does */
    if (napi_make_callback(env, g->async, global, callback, 1, &count, &result) == napi_pending_exception) {
      report_exception(env);
      break;
    }
    if (filled < g->max_batch) break; /* every ready socket was drained */
  }
  napi_close_handle_scope(env, scope);
}

static void on_group_closed(uv_handle_t *handle) {
  group_t *g = handle->data;
  napi_delete_reference(g->env, g->on_batch);
  napi_delete_reference(g->env, g->slab_ref);
  napi_delete_reference(g->env, g->meta_ref);
  napi_async_destroy(g->env, g->async);
  free(g);
}

/* udpGroupStart(slab: Buffer, meta: Uint32Array, slotSize, onBatch(count)) -> handle (external).
 * onBatch(count): entry i is meta[4i..4i+3] = (length, source address, source port, tag) with its bytes in slot i of
 * the slab; length 0xffffffff: the datagram did not fit its slot (or was not IPv4); 0xfffffffe: a receive error on
 * the socket, errno in the address field. */
static napi_value group_start(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  int32_t slot_size = 0;
  void *slab = NULL, *meta = NULL;
  size_t slab_len = 0, meta_len = 0;
  napi_typedarray_type meta_type;
  napi_valuetype cb_type;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4 ||
      napi_get_buffer_info(env, argv[0], &slab, &slab_len) != napi_ok ||
      napi_get_typedarray_info(env, argv[1], &meta_type, &meta_len, &meta, NULL, NULL) != napi_ok ||
      meta_type != napi_uint32_array || napi_get_value_int32(env, argv[2], &slot_size) != napi_ok || slot_size < 12 ||
      napi_typeof(env, argv[3], &cb_type) != napi_ok || cb_type != napi_function)
    return throw_type(env, "expected (slab: Buffer, meta: Uint32Array, slotSize: number, onBatch: function)");
  size_t batch = slab_len / (size_t)slot_size;
  if (meta_len / META_FIELDS < batch) batch = meta_len / META_FIELDS;
  if (batch > GROUP_MAX_BATCH) batch = GROUP_MAX_BATCH;
  if (batch == 0) return throw_type(env, "slab and meta must hold at least one slot");

  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return throw_type(env, "no event loop");
  group_t *g = calloc(1, sizeof *g);
  if (g == NULL) return throw_errno(env, "calloc", "udp group", ENOMEM);
  g->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (g->epfd < 0) {
    int err = errno;
    free(g);
    return throw_errno(env, "epoll_create1", "udp group", err);
  }
  g->env = env;
  g->max_batch = (unsigned)batch;
  g->slot_size = (size_t)slot_size;
  g->slab = slab;
  g->meta = meta;
  for (unsigned i = 0; i < g->max_batch; i++) {
    g->iov[i].iov_base = g->slab + (size_t)i * g->slot_size;
    g->iov[i].iov_len = g->slot_size;
    g->msgs[i].msg_hdr.msg_iov = &g->iov[i];
    g->msgs[i].msg_hdr.msg_iovlen = 1;
    g->msgs[i].msg_hdr.msg_name = &g->from[i];
    g->msgs[i].msg_hdr.msg_namelen = sizeof g->from[i];
  }
  int rc = uv_poll_init(loop, &g->poll, g->epfd);
  if (rc != 0) {
    close(g->epfd);
    free(g);
    return throw_errno(env, "uv_poll_init", "udp group", -rc);
  }
  g->poll.data = g;
  napi_value resource_name;
  napi_create_string_utf8(env, "natd:udp-group", NAPI_AUTO_LENGTH, &resource_name);
  napi_async_init(env, NULL, resource_name, &g->async);
  napi_create_reference(env, argv[3], 1, &g->on_batch);
  napi_create_reference(env, argv[0], 1, &g->slab_ref);
  napi_create_reference(env, argv[1], 1, &g->meta_ref);
  rc = uv_poll_start(&g->poll, UV_READABLE, on_group_readable);
  if (rc != 0) {
    g->stopped = 1;
    close(g->epfd);
    uv_close((uv_handle_t *)&g->poll, on_group_closed);
    return throw_errno(env, "uv_poll_start", "udp group", -rc);
  }
  napi_value handle;
  napi_create_external(env, g, NULL, NULL, &handle);
  return handle;
}

static group_t *get_group(napi_env env, napi_value value) {
  group_t *g = NULL;
  if (napi_get_value_external(env, value, (void **)&g) != napi_ok) return NULL;
  return g;
}

/* udpGroupAdd(handle, fd, tag): the group takes the fd over (udpGroupRemove closes it); its datagrams are
 * reported with `tag`. */
static napi_value group_add(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t fd = -1;
  uint32_t tag = 0;
  group_t *g;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 ||
      (g = get_group(env, argv[0])) == NULL || napi_get_value_int32(env, argv[1], &fd) != napi_ok || fd < 0 ||
      napi_get_value_uint32(env, argv[2], &tag) != napi_ok)
    return throw_type(env, "expected (handle: external from udpGroupStart, fd: number, tag: number)");
  if (g->stopped) return throw_errno(env, "epoll_ctl", "udp group stopped", EBADF);
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = EPOLLIN;
  ev.data.u64 = ((uint64_t)tag << 32) | (uint32_t)fd;
  if (epoll_ctl(g->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) return throw_errno(env, "epoll_ctl", "udp group", errno);
  return NULL;
}

/* udpGroupRemove(handle, fd): stops reading the fd and closes it. */
static napi_value group_remove(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd = -1;
  group_t *g;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      (g = get_group(env, argv[0])) == NULL || napi_get_value_int32(env, argv[1], &fd) != napi_ok || fd < 0)
    return throw_type(env, "expected (handle: external from udpGroupStart, fd: number)");
  if (!g->stopped) epoll_ctl(g->epfd, EPOLL_CTL_DEL, fd, NULL);
  close(fd);
  return NULL;
}

/* udpGroupStop(handle): stops reading. Idempotent; safe inside onBatch. Member fds are the caller's to remove
 * first (they are not closed here). */
static napi_value group_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  group_t *g;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || (g = get_group(env, argv[0])) == NULL)
    return throw_type(env, "expected (handle: external from udpGroupStart)");
  if (g->stopped) return NULL;
  g->stopped = 1;
  uv_poll_stop(&g->poll); /* removes the epoll fd from the loop, so closing it next is safe */
  close(g->epfd);
  uv_close((uv_handle_t *)&g->poll, on_group_closed); /* g is freed in on_group_closed, after a running callback */
  return NULL;
}

void register_udp_client(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"openUdpClientSocket", NULL, open_client_socket, NULL, NULL, NULL, napi_default, NULL},
    {"udpSendQuery", NULL, send_query, NULL, NULL, NULL, napi_default, NULL},
    {"udpGroupStart", NULL, group_start, NULL, NULL, NULL, napi_default, NULL},
    {"udpGroupAdd", NULL, group_add, NULL, NULL, NULL, napi_default, NULL},
    {"udpGroupRemove", NULL, group_remove, NULL, NULL, NULL, napi_default, NULL},
    {"udpGroupStop", NULL, group_stop, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
