/* Shared by the addon's source files: errors thrown the same way everywhere, and each file's registration. */
#ifndef NATD_NATIVE_H
#define NATD_NATIVE_H
#include <node_api.h>

/* Throws an Error whose `code` is the errno name and whose `syscall` names the call; returns NULL. */
napi_value throw_errno(napi_env env, const char *syscall, const char *detail, int err);
/* Throws a TypeError (bad arguments from the TypeScript side); returns NULL. */
napi_value throw_type(napi_env env, const char *msg);
/* A JS callback called from a libuv handle threw: hand the exception to Node (uncaughtException), as it would. */
void report_exception(napi_env env);
/* Tells a receive loop's JS callback that polling failed: callback(status, rearmed). For the receivers whose libuv
 * handle reported POLLERR (a negative status), which libuv has stopped by then. */
void report_poll_error_to_js(napi_env env, napi_async_context async, napi_ref callback, int status, int rearmed);
/* A receiver re-arms after POLLERR at most this many times in a row with nothing read in between (a socket that only
 * errs would otherwise spin the loop); JS then hears rearmed=false and logs that receiving stopped. */
#define POLL_ERRORS_MAX 1000

/* send_all.c: sends msgs[0, n) on a non-blocking UDP socket with sendmmsg. A full send buffer is waited out (a few
 * short polls, then the datagram counts as failed); a datagram the kernel refuses (ENETUNREACH, EMSGSIZE...) is skipped
 * and the rest still go; errnos[i], when given, is set for each skipped one. EBADF/ENOTSOCK (the socket is gone) stop
 * at once, failing what is left, and set *gone. Returns how many failed; *last_error is the last failure's errno. No
 * napi: also called from the journal's writer thread. */
struct mmsghdr;
unsigned send_all(int fd, struct mmsghdr *msgs, unsigned n, int *errnos, int *last_error, int *gone);

/* udp_batch.c: udpReceiverStart, udpReceiverStop, udpSendBatch */
void register_udp_batch(napi_env env, napi_value exports);
/* udp_client.c: openUdpClientSocket, udpSendQuery, udpGroupStart/Add/Remove/Stop (the forwarder's upstream sockets) */
void register_udp_client(napi_env env, napi_value exports);
/* peer_cred.c: getPeerCredentials (SO_PEERCRED of a connected unix socket, for the control socket) */
void register_peer_cred(napi_env env, napi_value exports);
/* arp_probe.c: arpProbeOpen, arpProbeSend, arpProbeClose (the DHCP conflict probe); socket_drops.c: socketDrops */
void register_arp_probe(napi_env env, napi_value exports);
void register_socket_drops(napi_env env, napi_value exports);
/* issue 14: icmp6_socket.c: icmp6Open, icmp6Send, icmp6Close (Router Solicitations in, Router Advertisements out) */
void register_icmp6_socket(napi_env env, napi_value exports);
/* issue 14: udp6_socket.c: openUdp6Socket (the DHCPv6 server socket, bound to the bridge) */
void register_udp6_socket(napi_env env, napi_value exports);
/* issue 18: journal_writer.c: journalWriterOpen/Submit/Reset/Close (the lease journal's group commit on its own
 * thread: write + fdatasync, then the replies it made durable sent from there) */
void register_journal_writer(napi_env env, napi_value exports);

#endif
