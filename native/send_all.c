/* One sendmmsg loop for the batched UDP sends (udp_batch.c, on the loop) and the journal writer's ACKs (its own
 * thread): the same waiting and skipping rules, so both paths fail a datagram for the same reasons. */
#define _GNU_SOURCE
#include "natd_native.h"
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>

/* a full socket send buffer is waited out this long, this many times, then the datagram is lost */
#define SEND_WAIT_MS 5
#define SEND_WAIT_TRIES 4

static void wait_writable(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLOUT};
  int rc;
  do rc = poll(&p, 1, SEND_WAIT_MS);
  while (rc < 0 && errno == EINTR);
}

unsigned send_all(int fd, struct mmsghdr *msgs, unsigned n, int *errnos, int *last_error, int *gone) {
  unsigned done = 0, failed = 0;
  int waits = 0;
  *gone = 0;
  while (done < n) {
    int sent = sendmmsg(fd, msgs + done, n - done, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent > 0) {
      done += (unsigned)sent;
      continue;
    }
    int err = errno;
    if (err == EINTR) continue;
    if ((err == EAGAIN || err == EWOULDBLOCK) && waits < SEND_WAIT_TRIES) {
      waits++;
      wait_writable(fd);
      continue;
    }
    *last_error = err;
    if (err == EBADF || err == ENOTSOCK) {
      *gone = 1;
      for (; done < n; done++, failed++)
        if (errnos) errnos[done] = err;
      break;
    }
    if (errnos) errnos[done] = err; /* this datagram cannot go (or the buffer stayed full): skip it, send the rest */
    failed++;
    done++;
  }
  return failed;
}
