/*
 * ARP conflict probe for the DHCP server (issue 13): is some host already using an address natd is about to offer?
 *
 * One packet socket (AF_PACKET, SOCK_DGRAM, ETH_P_ARP) bound to the bridge. JS asks for a batch of addresses; each
 * gets one broadcast ARP request "who-has X tell <gateway>". Every ARP frame another host puts on the bridge
 * (reply, request, gratuitous) is read here and its sender (IPv4, MAC) handed to JS in batches, through the same
 * uv_poll → napi_make_callback path as udp_batch.c. JS matches senders against the addresses it is waiting for and
 * owns every timeout: this file keeps no per-probe state, so any number of probes can be outstanding at once.
 *
 * Why the gateway as sender IP, not RFC 5227's 0.0.0.0: natd owns the gateway address, so "gateway is at the
 * bridge's MAC" is true and pollutes no cache; and a sender of 0.0.0.0 would make the request an RFC 5227 *probe*,
 * which a guest running its own address conflict detection for the same address (a client that was just offered it)
 * must treat as a competing claim and DECLINE. An ordinary request from the gateway is what the host's own kernel
 * sends when it resolves a guest, so every guest stack answers it; a firewall that drops ICMP echo still does.
 *
 * Frames the socket saw leave (PACKET_OUTGOING) and frames whose sender MAC is the bridge's own are ignored. The
 * bridge's MAC is read again before each batch is sent: a bridge without a fixed MAC takes its ports' lowest one,
 * which changes as guests come and go, and the answers go to whatever MAC the request named.
 */
#define _GNU_SOURCE
#include "natd_native.h"
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

/* An Ethernet/IPv4 ARP body (RFC 826): the packet socket (SOCK_DGRAM) adds and strips the link header. */
#define ARP_BODY_LEN 28
/* Frames read per readable event before yielding to the event loop; JS is called once per full or final batch. */
#define MAX_READS_PER_WAKEUP 1024
/* Room for the answers of a whole boot storm at once; ARP frames are 28 bytes (plus overhead per skb). */
#define ARP_RCVBUF (1 << 20)

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref on_senders, out_ref;
  napi_async_context async;
  int fd;
  int ifindex;
  int stopped;
  int poll_errors; /* POLLERRs in a row with nothing read in between */
  uint32_t sender_ip; /* network order */
  unsigned char mac[6];
  uint32_t *out; /* (ip, mac high 16 bits, mac low 32 bits) per sender, host order */
  size_t out_entries;
} prober_t;

static int read_mac(int fd, const char *device, unsigned char mac[6]) {
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  size_t len = strnlen(device, IFNAMSIZ);
  if (len >= IFNAMSIZ) {
    errno = ENODEV;
    return -1;
  }
  memcpy(ifr.ifr_name, device, len);
  if (ioctl(fd, SIOCGIFHWADDR, &ifr) != 0) return -1;
  memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
  return 0;
}

static int refresh_mac(prober_t *p) {
  char name[IF_NAMESIZE];
  if (if_indextoname((unsigned)p->ifindex, name) == NULL) return -1;
  return read_mac(p->fd, name, p->mac);
}

/* Hands the first `count` entries of the out array to JS: onSenders(count). False when JS threw. */
static int deliver(prober_t *p, size_t count) {
  napi_env env = p->env;
  napi_value callback, global, argv, result;
  napi_get_reference_value(env, p->on_senders, &callback);
  napi_get_global(env, &global);
  napi_create_uint32(env, (uint32_t)count, &argv);
  if (napi_make_callback(env, p->async, global, callback, 1, &argv, &result) == napi_pending_exception) {
    report_exception(env);
    return 0;
  }
  return 1;
}

/* The sender of one received ARP frame worth reporting, or 0: not Ethernet/IPv4 ARP, not a request or reply, sent
 * by us, or without a sender address (another host's RFC 5227 probe: it claims nothing yet). */
static int parse_sender(const prober_t *p, const unsigned char *b, ssize_t len, const struct sockaddr_ll *from,
                        uint32_t *ip, const unsigned char **mac) {
  if (len < ARP_BODY_LEN || from->sll_pkttype == PACKET_OUTGOING) return 0;
  uint16_t htype = (uint16_t)(b[0] << 8 | b[1]), ptype = (uint16_t)(b[2] << 8 | b[3]), op = (uint16_t)(b[6] << 8 | b[7]);
  if (htype != ARPHRD_ETHER || ptype != ETHERTYPE_IP || b[4] != 6 || b[5] != 4) return 0;
  if (op != ARPOP_REQUEST && op != ARPOP_REPLY) return 0;
  if (memcmp(b + 8, p->mac, 6) == 0) return 0;
  uint32_t spa;
  memcpy(&spa, b + 14, 4);
  if (spa == 0 || spa == p->sender_ip) return 0;
  *ip = ntohl(spa);
  *mac = b + 8;
  return 1;
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  prober_t *p = handle->data;
  (void)events;
  if (p->stopped) return;
  if (status < 0) {
    /* libuv stopped the handle on POLLERR: read (and so clear) the socket error, re-arm and tell JS, as the UDP
     * receivers do; a packet socket's errors (e.g. ENETDOWN while the bridge is down) usually pass */
    int so_error = 0;
    socklen_t len = sizeof so_error;
    getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
    int rearmed = ++p->poll_errors <= POLL_ERRORS_MAX && uv_poll_start(&p->poll, UV_READABLE, on_readable) == 0;
    report_poll_error_to_js(p->env, p->async, p->on_senders, so_error ? -so_error : status, rearmed);
    return;
  }
  p->poll_errors = 0;
  napi_handle_scope scope;
  if (napi_open_handle_scope(p->env, &scope) != napi_ok) return;
  size_t count = 0;
  unsigned char frame[256];
  for (int reads = 0; reads < MAX_READS_PER_WAKEUP && !p->stopped; reads++) {
    struct sockaddr_ll from;
    socklen_t from_len = sizeof from;
    ssize_t n = recvfrom(p->fd, frame, sizeof frame, MSG_DONTWAIT, (struct sockaddr *)&from, &from_len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break; /* EAGAIN: drained; anything else: the next wakeup tries again */
    uint32_t ip;
    const unsigned char *mac;
    if (!parse_sender(p, frame, n, &from, &ip, &mac)) continue;
    uint32_t *e = p->out + 3 * count;
    e[0] = ip;
    e[1] = (uint32_t)mac[0] << 8 | mac[1];
    e[2] = (uint32_t)mac[2] << 24 | (uint32_t)mac[3] << 16 | (uint32_t)mac[4] << 8 | mac[5];
    if (++count == p->out_entries) {
      if (!deliver(p, count)) break;
      count = 0;
    }
  }
  if (count > 0 && !p->stopped) deliver(p, count);
  napi_close_handle_scope(p->env, scope);
}

static void on_closed(uv_handle_t *handle) {
  prober_t *p = handle->data;
  napi_delete_reference(p->env, p->on_senders);
  napi_delete_reference(p->env, p->out_ref);
  napi_async_destroy(p->env, p->async);
  free(p);
}

/* Opens and binds the packet socket; on failure returns -1 with errno set (EPERM without CAP_NET_RAW, ENODEV). */
static int open_arp_socket(const char *device, int *ifindex, unsigned char mac[6]) {
  *ifindex = (int)if_nametoindex(device);
  if (*ifindex == 0) return -1;
  int fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_ARP));
  if (fd < 0) return -1;
  struct sockaddr_ll addr;
  memset(&addr, 0, sizeof addr);
  addr.sll_family = AF_PACKET;
  addr.sll_protocol = htons(ETH_P_ARP);
  addr.sll_ifindex = *ifindex;
  int one = 1, rcvbuf = ARP_RCVBUF;
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || read_mac(fd, device, mac) != 0) {
    int err = errno;
    close(fd);
    errno = err;
    return -1;
  }
  /* best effort: older kernels lack the option (the PACKET_OUTGOING check covers it), rmem_max may cap the buffer */
  setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  return fd;
}

/* arpProbeOpen(device, senderIp: number, out: Uint32Array, onSenders(count)) -> handle (external).
 * onSenders(count): out[3i..3i+2] = (sender IPv4, MAC bytes 0-1, MAC bytes 2-5) for i < count. */
static napi_value probe_open(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  char device[IF_NAMESIZE + 1];
  size_t device_len = 0;
  uint32_t sender_ip = 0;
  void *out = NULL;
  size_t out_len = 0;
  napi_typedarray_type out_type;
  napi_valuetype cb_type;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4 ||
      napi_get_value_string_utf8(env, argv[0], device, sizeof device, &device_len) != napi_ok || device_len == 0 ||
      device_len >= IF_NAMESIZE || napi_get_value_uint32(env, argv[1], &sender_ip) != napi_ok ||
      napi_get_typedarray_info(env, argv[2], &out_type, &out_len, &out, NULL, NULL) != napi_ok ||
      out_type != napi_uint32_array || out_len < 3 || napi_typeof(env, argv[3], &cb_type) != napi_ok || cb_type != napi_function)
    return throw_type(env, "expected (device: string, senderIp: number, out: Uint32Array, onSenders: function)");

  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return throw_type(env, "no event loop");
  prober_t *p = calloc(1, sizeof *p);
  if (p == NULL) return throw_errno(env, "calloc", "arp probe", ENOMEM);
  p->fd = open_arp_socket(device, &p->ifindex, p->mac);
  if (p->fd < 0) {
    int err = errno;
    free(p);
    return throw_errno(env, "socket", device, err);
  }
  p->env = env;
  p->sender_ip = htonl(sender_ip);
  p->out = out;
  p->out_entries = out_len / 3;
  int rc = uv_poll_init_socket(loop, &p->poll, p->fd);
  if (rc != 0) {
    close(p->fd);
    free(p);
    return throw_errno(env, "uv_poll_init_socket", "arp probe", -rc);
  }
  p->poll.data = p;
  napi_value resource_name;
  napi_create_string_utf8(env, "natd:arp-probe", NAPI_AUTO_LENGTH, &resource_name);
  napi_async_init(env, NULL, resource_name, &p->async);
  napi_create_reference(env, argv[3], 1, &p->on_senders);
  napi_create_reference(env, argv[2], 1, &p->out_ref);
  rc = uv_poll_start(&p->poll, UV_READABLE, on_readable);
  if (rc != 0) {
    p->stopped = 1;
    close(p->fd);
    uv_close((uv_handle_t *)&p->poll, on_closed);
    return throw_errno(env, "uv_poll_start", "arp probe", -rc);
  }
  napi_value handle;
  napi_create_external(env, p, NULL, NULL, &handle);
  return handle;
}

static prober_t *get_prober(napi_env env, napi_value value) {
  prober_t *p = NULL;
  if (napi_get_value_external(env, value, (void **)&p) != napi_ok) return NULL;
  return p;
}

/* arpProbeSend(handle, targets: Uint32Array, count) -> the number of requests the kernel took. One broadcast
 * "who-has target tell senderIp" per target. A full send queue (EAGAIN, ENOBUFS) stops the batch: JS sends the
 * rest again with its retransmission. */
static napi_value probe_send(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  void *targets = NULL;
  size_t targets_len = 0;
  uint32_t count = 0;
  napi_typedarray_type type;
  prober_t *p;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 || (p = get_prober(env, argv[0])) == NULL ||
      napi_get_typedarray_info(env, argv[1], &type, &targets_len, &targets, NULL, NULL) != napi_ok ||
      type != napi_uint32_array || napi_get_value_uint32(env, argv[2], &count) != napi_ok || count > targets_len)
    return throw_type(env, "expected (handle, targets: Uint32Array, count: number <= targets.length)");
  if (p->stopped) return throw_errno(env, "sendto", "arp probe closed", EBADF);
  refresh_mac(p); /* on failure the last known MAC still serves */

  struct sockaddr_ll to;
  memset(&to, 0, sizeof to);
  to.sll_family = AF_PACKET;
  to.sll_protocol = htons(ETH_P_ARP);
  to.sll_ifindex = p->ifindex;
  to.sll_halen = 6;
  memset(to.sll_addr, 0xff, 6);
  unsigned char body[ARP_BODY_LEN] = {0, 1, 8, 0, 6, 4, 0, 1};
  memcpy(body + 8, p->mac, 6);
  memcpy(body + 14, &p->sender_ip, 4);
  memset(body + 18, 0, 6);
  const uint32_t *t = targets;
  uint32_t sent = 0;
  for (; sent < count; sent++) {
    uint32_t tpa = htonl(t[sent]);
    memcpy(body + 24, &tpa, 4);
    ssize_t n;
    do n = sendto(p->fd, body, sizeof body, MSG_DONTWAIT, (struct sockaddr *)&to, sizeof to);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno == EAGAIN || errno == ENOBUFS || sent > 0) break;
      return throw_errno(env, "sendto", "arp probe", errno); /* ENETDOWN, ENXIO...: the probe cannot run now */
    }
  }
  napi_value result;
  napi_create_uint32(env, sent, &result);
  return result;
}

/* arpProbeClose(handle): stops reading and closes the socket. Idempotent; safe inside onSenders. */
static napi_value probe_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  prober_t *p;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || (p = get_prober(env, argv[0])) == NULL)
    return throw_type(env, "expected (handle: external from arpProbeOpen)");
  if (p->stopped) return NULL;
  p->stopped = 1;
  uv_poll_stop(&p->poll);
  close(p->fd);
  uv_close((uv_handle_t *)&p->poll, on_closed);
  return NULL;
}

void register_arp_probe(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"arpProbeOpen", NULL, probe_open, NULL, NULL, NULL, napi_default, NULL},
    {"arpProbeSend", NULL, probe_send, NULL, NULL, NULL, napi_default, NULL},
    {"arpProbeClose", NULL, probe_close, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
